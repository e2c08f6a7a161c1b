"""`vlforge clean` end to end on Ray against a 127.0.0.1 image server: funnel, shards, dedup, resume."""

import dataclasses
import hashlib
import io
import json
import pickle
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from test_clean_support import (
    ImageServer,
    by_uid,
    jpeg,
    manifest_rows,
    parse_clean_args,
    photo,
    sha256,
    tar_samples,
    write_laion,
    write_recipe,
)

from vlforge.pipelines.clean.plan import PLAN_DIR, make_plan
from vlforge.pipelines.clean.recipe import RecipeError, load_recipe
from vlforge.pipelines.clean.run import SUMMARY, clean, run_clean
from vlforge.shards.verify import verify_dir
from vlforge.sources.dumps.schemas import InputFile

ENGLISH = "A clear photograph of {} taken outdoors on a sunny day"


def distinct_jpegs(n: int, size: int = 160) -> list[bytes]:
    """n different JPEGs (crops of one photograph at different offsets)."""
    base = photo("hubble_deep_field")
    return [jpeg(np.ascontiguousarray(base[i * 7:i * 7 + size, i * 11:i * 11 + size])) for i in range(n)]


@pytest.fixture(scope="module")
def funnel(ray_local, tmp_path_factory):
    """One run over a LAION dump with a planted problem in most rows; the tests below read its output."""
    tmp = tmp_path_factory.mktemp("funnel")
    images = {"astronaut": jpeg(photo("astronaut")), "coffee": jpeg(photo("coffee")),
              "rocket": jpeg(photo("rocket")), "hubble": jpeg(photo("hubble_deep_field")),
              "chelsea": jpeg(photo("chelsea"))}
    with ImageServer() as server:
        url = {name: server.add(f"/{name}.jpg", data) for name, data in images.items()}
        copy = server.add("/coffee-copy.jpg", images["coffee"])
        rows = [
            (0, url["astronaut"], ENGLISH.format("an astronaut in a white space suit"), 512, 512, 0.35),
            (1, url["coffee"], ENGLISH.format("a cup of coffee on a saucer"), 600, 400, 0.35),
            (2, server.url("/gone.jpg"), ENGLISH.format("a picture that the server lost"), 500, 500, 0.35),
            (3, url["rocket"], ENGLISH.format("a rocket on its launch pad"), 640, 427, 0.10),
            (4, url["astronaut"], ENGLISH.format("the same astronaut picture again"), 512, 512, 0.35),
            (5, copy, ENGLISH.format("the same coffee bytes under another address"), 600, 400, 0.35),
            (6, "http://10.20.30.40/private.jpg", ENGLISH.format("a host on a private network"), 500, 500, 0.35),
            (0, url["chelsea"], ENGLISH.format("a second row that reuses the first id"), 451, 300, 0.35),
            (8, url["hubble"], ENGLISH.format("a field of distant galaxies in deep space"), 1000, 872, 0.35),
            (9, url["chelsea"] + "?html", "<b>A ginger cat</b> lying on the floor &amp; looking up at the camera",
             451, 300, 0.35),
            (10, url["chelsea"] + "?de", "Eine rote Katze liegt auf dem Boden und schaut nach oben zur Kamera",
             451, 300, 0.35),
            (11, url["rocket"] + "?wide", ENGLISH.format("a very wide panorama of a rocket"), 4000, 300, 0.35),
        ]
        server.add("/chelsea.jpg?html", images["chelsea"])
        server.add("/chelsea.jpg?de", images["chelsea"])
        server.add("/rocket.jpg?wide", images["rocket"])
        dump = write_laion(tmp / "laion.parquet", [
            {"SAMPLE_ID": r[0], "URL": r[1], "TEXT": r[2], "WIDTH": r[3], "HEIGHT": r[4], "similarity": r[5]}
            for r in rows], row_group_size=5)
        recipe = load_recipe(write_recipe(tmp / "recipe.yaml"))
        report = clean(recipe, tmp / "out", [("web", str(dump))])
        requests = list(server.requests)
        rerun = clean(recipe, tmp / "out", [("web", str(dump))])
        requests_after_rerun = list(server.requests)
    return {"out": tmp / "out", "report": report, "rerun": rerun, "images": images, "requests": requests,
            "requests_after_rerun": requests_after_rerun, "rows": rows}


def _row_of(out: Path) -> dict[int, dict]:
    return {r["row"]: r for r in manifest_rows(out)}


def test_every_input_row_has_exactly_one_manifest_row(funnel) -> None:
    rows = manifest_rows(funnel["out"])
    assert sorted(r["row"] for r in rows) == list(range(len(funnel["rows"])))
    summary = funnel["report"].summary["web"]
    assert summary["read"] == 12 and summary["kept"] + summary["dropped"] == 12


def test_each_planted_problem_has_its_reason(funnel) -> None:
    got = {row: (r["status"], r["reason"], r["stage"]) for row, r in _row_of(funnel["out"]).items()}
    assert got == {
        0: ("kept", None, None),
        1: ("kept", None, None),
        2: ("dropped", "http_404", "download"),
        3: ("dropped", "clip_score<0.28", "clip_score"),
        4: ("dropped", "duplicate_url", "dedup"),
        5: ("dropped", "duplicate_sha256", "dedup_sha256"),
        6: ("dropped", "blocked_private", "download"),
        7: ("dropped", "duplicate_uid", "dedup"),
        8: ("kept", None, None),
        9: ("kept", None, None),
        10: ("dropped", "lang=de", "language"),
        11: ("dropped", "aspect_ratio>3", "aspect_ratio"),
    }


def test_only_surviving_rows_are_downloaded(funnel) -> None:
    requests = funnel["requests"]
    assert sorted(requests) == sorted(["/astronaut.jpg", "/coffee.jpg", "/gone.jpg", "/coffee-copy.jpg",
                                       "/hubble.jpg", "/chelsea.jpg?html"])


def test_kept_samples_carry_image_caption_and_metadata(funnel) -> None:
    samples = tar_samples(funnel["out"])
    kept = {r["row"]: r for r in manifest_rows(funnel["out"]) if r["status"] == "kept"}
    assert sorted(samples) == sorted(r["key"] for r in kept.values())
    images = funnel["images"]
    expected = {0: "astronaut", 1: "coffee", 8: "hubble", 9: "chelsea"}
    for row, name in expected.items():
        sample = samples[kept[row]["key"]]
        assert sample["jpg"] == images[name]
        meta = json.loads(sample["json"])
        assert meta["uid"] == str(funnel["rows"][row][0]) and meta["source"] == "web"
        assert meta["sha256"] == sha256(images[name]) == kept[row]["sha256"]
        assert (meta["width"], meta["height"]) == Image.open(io.BytesIO(images[name])).size
        assert meta["lang"] == "en" and meta["scores"]["clip_score"] == 0.35
    assert samples[kept[9]["key"]]["txt"].decode() == "A ginger cat lying on the floor & looking up at the camera"


def test_output_passes_shard_verification(funnel) -> None:
    report = verify_dir(funnel["out"])
    assert report.ok, report.problems
    assert report.samples == 4 and report.manifest_rows == 12
    assert not list(funnel["out"].glob(".*"))  # no temporary files left


def test_summary_is_written_per_source(funnel) -> None:
    summary = json.loads((funnel["out"] / SUMMARY).read_text())
    assert summary["web"]["kept"] == 4 and summary["web"]["reasons"]["duplicate_url"] == 1


def test_rerun_redoes_nothing_and_changes_nothing(funnel) -> None:
    rerun = funnel["rerun"]
    assert rerun.run.stats == [] and len(rerun.run.skipped) == 3
    assert funnel["requests_after_rerun"] == funnel["requests"]
    assert rerun.summary == funnel["report"].summary


@pytest.fixture(scope="module")
def img2dataset_shards(tmp_path_factory):
    """Shards written by img2dataset itself (webdataset output) from the 127.0.0.1 server."""
    from img2dataset import download as img2dataset_download  # test_clean_support keeps albumentations offline

    tmp = tmp_path_factory.mktemp("i2d")
    images = distinct_jpegs(5)
    with ImageServer() as server:
        urls = [server.add(f"/{i}.jpg", data) for i, data in enumerate(images)]
        urls.append(server.url("/missing.jpg"))
        captions = [ENGLISH.format(f"galaxy number {i}") for i in range(len(urls))]
        pq.write_table(pa.table({"url": urls, "caption": captions}), tmp / "list.parquet")
        img2dataset_download(url_list=str(tmp / "list.parquet"), input_format="parquet", url_col="url",
                             caption_col="caption", output_folder=str(tmp / "shards"), output_format="webdataset",
                             processes_count=1, thread_count=2, number_sample_per_shard=4, resize_mode="no",
                             disable_all_reencoding=True, timeout=2, enable_wandb=False)
        served = len(server.requests)
    return tmp / "shards", images, served


def test_img2dataset_shards_are_cleaned_without_downloading(ray_local, tmp_path, img2dataset_shards) -> None:
    shards, images, served = img2dataset_shards
    assert served == 6
    text_only = [{"op": "caption"}, {"op": "language", "keep": ["en"]}]  # img2dataset output has no CLIP score
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", before_download=text_only))
    with ImageServer() as server:
        report = clean(recipe, tmp_path / "out", [("web", str(shards))])
        assert server.requests == []
    rows = manifest_rows(tmp_path / "out")
    assert len(rows) == 6 and report.summary["web"]["read"] == 6
    failed = [r for r in rows if r["status"] == "dropped"]
    assert [(r["reason"], r["stage"]) for r in failed] == [("http_404", "download")]
    stored = sorted(s["jpg"] for s in tar_samples(tmp_path / "out").values())
    assert stored == sorted(images)


NO_TORCH = """
import json, os, sys
from pathlib import Path
from vlforge.pipelines.clean.recipe import RecipeError, load_recipe
from vlforge.pipelines.clean.run import clean
from vlforge.pipelines.executor import executor_session


def ray_workers():
    \"\"\"(pid, torch's library mapped) of every Ray worker process descending from this driver.\"\"\"
    def parent(pid):
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if not entry.name.isdigit() or not (entry / "cmdline").read_bytes().startswith(b"ray::"):
                continue
            pid = int(entry.name)
            while pid > 1 and pid != os.getpid():
                pid = parent(pid)
            if pid == os.getpid():
                found.append((int(entry.name), "libtorch" in (entry / "maps").read_text()))
        except OSError:
            continue
    return found


with executor_session(num_cpus=1) as session:
    session.wait()  # Ray up before the run: its units go to workers (else the driver takes them while Ray boots)
    report = clean(load_recipe(sys.argv[1]), sys.argv[2], [("web", sys.argv[3])])
    workers = ray_workers()  # the workers that ran the plan and the units, still alive
heavy = sorted(m for m in ("torch", "webdataset", "open_clip", "transformers") if m in sys.modules)
print(json.dumps({"kept": report.run.kept, "driver": heavy, "workers": len(workers),
                  "torch_in_workers": [pid for pid, torch in workers if torch]}))
"""


@pytest.mark.slow
def test_cleaning_loads_no_torch_in_the_driver_or_the_workers(tmp_path, img2dataset_shards) -> None:
    """Nothing of a cleaning run without a CLIP step needs torch: no process pays its import (1.5 s each)."""
    import subprocess
    import sys

    shards, images, _ = img2dataset_shards
    recipe = write_recipe(tmp_path / "r.yaml", before_download=[{"op": "caption"}])
    done = subprocess.run([sys.executable, "-c", NO_TORCH, str(recipe), str(tmp_path / "out"), str(shards)],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["workers"] >= 1 and result == {"kept": len(images), "driver": [], "workers": result["workers"],
                                                 "torch_in_workers": []}


def test_top_fraction_threshold_is_computed_per_source(ray_local, tmp_path) -> None:
    """DataComp keeps its top 30% by ViT-L/14 score; LAION, in the same run, keeps its fixed threshold."""
    images = distinct_jpegs(12)
    with ImageServer() as server:
        urls = [server.add(f"/{i}.jpg", data) for i, data in enumerate(images)]
        table = pa.table({"uid": [f"d{i}" for i in range(10)], "url": urls[:10],
                          "text": [ENGLISH.format(f"galaxy number {i}") for i in range(10)],
                          "original_width": [160] * 10, "original_height": [160] * 10,
                          "clip_b32_similarity_score": [0.3] * 10,
                          "clip_l14_similarity_score": [0.05 * i + 0.01234 for i in range(10)]})
        pq.write_table(table, tmp_path / "datacomp.parquet")
        laion = write_laion(tmp_path / "laion.parquet", [
            {"SAMPLE_ID": 100, "URL": urls[10], "TEXT": ENGLISH.format("a bright galaxy"), "similarity": 0.35},
            {"SAMPLE_ID": 101, "URL": urls[11], "TEXT": ENGLISH.format("a faint galaxy"), "similarity": 0.1}])
        sources = {"web": {}, "dc": {"filters": {"clip_score": {"top_fraction": 0.3, "column": "clip_l14_score"}}}}
        recipe = load_recipe(write_recipe(tmp_path / "r.yaml", sources=sources))
        clean(recipe, tmp_path / "out", [("dc", str(tmp_path / "datacomp.parquet")), ("web", str(laion))])
        assert sorted(server.requests) == sorted(["/7.jpg", "/8.jpg", "/9.jpg", "/10.jpg"])
    rows = {r["uid"]: r for r in manifest_rows(tmp_path / "out")}
    assert sorted(uid for uid, r in rows.items() if r["status"] == "kept") == ["100", "d7", "d8", "d9"]
    assert rows["101"]["reason"] == "clip_score<0.28"
    assert rows["d6"]["reason"].startswith("clip_score<0.36")


def six_photos_and_an_html_page(server: ImageServer, path: Path, row_group_size: int | None = None) -> Path:
    """A LAION dump of six distinct photos and a seventh URL that serves HTML, all on `server`."""
    rows = [{"SAMPLE_ID": i, "URL": server.add(f"/{i}.jpg", data), "TEXT": ENGLISH.format(f"galaxy {i}")}
            for i, data in enumerate(distinct_jpegs(6))]
    rows.append({"SAMPLE_ID": 6, "URL": server.add("/html.jpg", b"<html>no</html>"), "TEXT": ENGLISH.format("x")})
    return write_laion(path, rows, row_group_size=row_group_size)


def test_pooled_step_runs_in_actors_with_the_same_result(ray_local, tmp_path) -> None:
    with ImageServer() as server:
        dump = six_photos_and_an_html_page(server, tmp_path / "d.parquet")
        outputs = {}
        for actors in (0, 1):
            steps = [{"op": "image", "actors": actors}]
            recipe = load_recipe(write_recipe(tmp_path / f"r{actors}.yaml", after_download=steps))
            clean(recipe, tmp_path / f"out{actors}", [("web", str(dump))])
            outputs[actors] = {r["uid"]: (r["status"], r["reason"]) for r in manifest_rows(tmp_path / f"out{actors}")}
    assert outputs[0] == outputs[1]
    assert outputs[1]["6"] == ("dropped", "image_html")
    tars = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "out0").glob("*.tar")}
    assert tars == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / "out1").glob("*.tar")}


def test_executor_processes_writes_what_ray_writes(ray_local, tmp_path) -> None:
    """The same dump cleaned on Ray and in forked processes (downloads included): the same manifests and tars."""
    with ImageServer() as server:
        dump = six_photos_and_an_html_page(server, tmp_path / "d.parquet", row_group_size=2)
        outputs, tars = {}, {}
        for executor in ("ray", "processes"):
            recipe = load_recipe(write_recipe(tmp_path / f"{executor}.yaml", rows_per_unit=2, executor=executor))
            report = clean(recipe, tmp_path / executor, [("web", str(dump))])
            assert len(report.run.stats) == 4
            outputs[executor] = {r["uid"]: (r["status"], r["reason"], r["sha256"])
                                 for r in manifest_rows(tmp_path / executor)}
            tars[executor] = {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
                              for p in (tmp_path / executor).glob("*.tar")}
    assert outputs["ray"] == outputs["processes"] and len(outputs["ray"]) == 7
    assert outputs["processes"]["6"][:2] == ("dropped", "image_html")
    assert tars["ray"] == tars["processes"] and len(tars["ray"]) == 3


def test_executor_processes_refuses_a_step_on_ray_actors(tmp_path) -> None:
    path = write_recipe(tmp_path / "r.yaml", after_download=[{"op": "image", "actors": 1}], executor="processes")
    with pytest.raises(RecipeError, match=r"executor processes: steps \['image'\] run on Ray actors"):
        load_recipe(path)


def test_actor_pool_serves_a_step_and_is_stopped(ray_local, tmp_path) -> None:
    import ray

    from vlforge.filters.image import ImageFilter
    from vlforge.pipelines.clean.pools import PooledFilter, start_pools, stop_pools

    recipe = load_recipe(write_recipe(tmp_path / "r.yaml", after_download=[{"op": "image", "actors": 2}]))
    assert start_pools(recipe, set()) == {}  # no source of this run uses it: no actors
    pools = start_pools(recipe, {"web"})
    batch = pa.table({"row": [0, 1], "image": [jpeg(photo("coffee")), b"<html></html>"]})
    pooled = PooledFilter("image", pools["image"]).apply(batch)
    local = ImageFilter().apply(batch)
    assert pooled.reasons == local.reasons == [None, "image_html"]
    assert pooled.batch.equals(local.batch)
    stop_pools(pools)
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(pools["image"][0].apply.remote(batch))


def test_other_inputs_into_the_same_out_dir_are_refused(ray_local, tmp_path) -> None:
    from vlforge.shards.outdir import OutDirError

    with ImageServer() as server:
        coffee = server.add("/a.jpg", jpeg(photo("coffee")))
        first = write_laion(tmp_path / "a.parquet", [{"SAMPLE_ID": 1, "URL": coffee, "TEXT": ENGLISH.format("coffee")}])
        second = write_laion(tmp_path / "b.parquet", [{"SAMPLE_ID": 2, "URL": server.url("/b.jpg"),
                                                       "TEXT": ENGLISH.format("nothing"), "WIDTH": 9, "HEIGHT": 9}])
        recipe = load_recipe(write_recipe(tmp_path / "r.yaml"))
        clean(recipe, tmp_path / "out", [("web", str(first))])
        with pytest.raises(OutDirError, match=r"holds a clean run of other inputs or options \(changed: --input:"):
            clean(recipe, tmp_path / "out", [("web", str(second))])
    assert by_uid(tmp_path / "out")["1"]["status"] == "kept"


def test_default_settings_refuse_loopback_before_any_request(ray_local, tmp_path) -> None:
    """No `allow_loopback` in the recipe: 127.0.0.1 and localhost URLs are refused, the server sees nothing.

    Dedup is off here, so the repeated URL reaches the guard too (and the plan has no dedup keys to write).
    """
    with ImageServer() as server:
        coffee = server.add("/coffee.jpg", jpeg(photo("coffee")))
        urls = [coffee, f"http://localhost:{server.port}/coffee.jpg", coffee]
        dump = write_laion(tmp_path / "d.parquet", [{"SAMPLE_ID": i, "URL": url, "TEXT": ENGLISH.format("coffee")}
                                                    for i, url in enumerate(urls)])
        recipe = load_recipe(write_recipe(tmp_path / "r.yaml", download={"timeout": 2, "thread_count": 2},
                                          dedup={"url": False, "uid": False, "sha256": False}))
        assert recipe.download.allow_loopback is False
        report = clean(recipe, tmp_path / "out", [("web", str(dump))])
        assert server.requests == []
    got = {r["uid"]: (r["status"], r["reason"], r["stage"]) for r in manifest_rows(tmp_path / "out")}
    assert got == {str(i): ("dropped", "blocked_loopback", "download") for i in range(3)}
    assert report.summary["web"]["reasons"] == {"blocked_loopback": 3}


def test_cli_shows_progress_and_ends_with_a_table_per_source(ray_local, tmp_path, capsys) -> None:
    images = distinct_jpegs(3)
    with ImageServer() as server:
        rows = [{"SAMPLE_ID": i, "URL": server.add(f"/{i}.jpg", data), "TEXT": ENGLISH.format(f"galaxy {i}")}
                for i, data in enumerate(images)]
        rows.append({"SAMPLE_ID": 3, "URL": server.url("/gone.jpg"), "TEXT": ENGLISH.format("a lost galaxy")})
        dump = write_laion(tmp_path / "d.parquet", rows)
        recipe = write_recipe(tmp_path / "r.yaml", rows_per_unit=2)
        args = parse_clean_args("--recipe", str(recipe), "--input", str(dump), "--out", str(tmp_path / "out"))
        assert run_clean(args) == 0
    out, err = capsys.readouterr()
    progress = re.findall(r"^\[clean\] units (\d)/2  samples (\d+) \([\d,]+/s\)  kept ([\d.]+)%$", err, re.M)
    assert [p[0] for p in progress] == ["1", "2"]
    assert progress[0] in {("1", "2", "100.0"), ("1", "2", "50.0")}  # units finish in either order
    assert progress[1] == ("2", "4", "75.0")
    table = out.splitlines()
    assert re.fullmatch(r"source +read +kept +kept % +dropped by reason", table[0])
    assert re.fullmatch(r"web +4 +3 +75\.0 +dropped 1", table[1])
    assert re.fullmatch(r" +1 +http_404", table[2])
    assert "units run 2, skipped (already committed) 0" in err


def test_sample_json_carries_the_filters_sample_columns(funnel) -> None:
    """`lang` (language) and `caption_raw` (caption) reach a kept sample's JSON via the filters' `sample_columns`."""
    samples = tar_samples(funnel["out"])
    kept = {r["row"]: r for r in manifest_rows(funnel["out"]) if r["status"] == "kept"}
    meta = json.loads(samples[kept[9]["key"]]["json"])
    assert meta["caption_raw"] == "<b>A ginger cat</b> lying on the floor &amp; looking up at the camera"
    assert meta["lang"] == "en" and set(meta) == {"uid", "source", "url", "width", "height", "lang", "scores",
                                                  "sha256", "caption_raw"}


def test_a_unit_carries_its_own_input_file_and_no_list_of_the_others(tmp_path) -> None:
    """A unit is pickled into its task: the plan's other input files stay out of it (issue F8)."""
    files = [InputFile(f"/dumps/part-{i}.parquet", "parquet", "web", i, "laion", {"url": "URL"}, {})
             for i in range(3)]
    units = [{"file_index": i, "row_start": start, "row_count": 10, "byte_start": None}
             for i in range(3) for start in (0, 10)]
    plan = {"fingerprint": {"recipe": "r"}, "files": [dataclasses.asdict(f) for f in files], "units": units,
            "thresholds": {}, "partition_bits": 0}
    (tmp_path / PLAN_DIR).mkdir()
    (tmp_path / PLAN_DIR / "plan.json").write_text(json.dumps(plan))
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml"))
    _, planned = make_plan(recipe, tmp_path, files, {"recipe": "r"})
    assert [(u.payload.file, u.payload.range.row_start) for u in planned] == [(f, s) for f in files for s in (0, 10)]
    for unit in planned:
        others = [f.path for f in files if f.file_index != unit.payload.file_index]
        assert not any(path.encode() in pickle.dumps(unit.payload) for path in others)


def test_img2dataset_parquets_without_their_tars_are_not_deduplicated_by_their_positional_keys(
        ray_local, tmp_path) -> None:
    """Two img2dataset runs without tars (URLs to download) both have a key 000000000: a position, no identity.

    Neither copy is a uid duplicate, and the shards' own status/error_message never replace the manifest's."""
    images = distinct_jpegs(4)
    with ImageServer() as server:
        for run in (0, 1):
            urls = [server.add(f"/{run}/{i}.jpg", images[2 * run + i]) for i in range(2)]
            (tmp_path / f"run{run}").mkdir()
            pq.write_table(pa.table({"key": ["000000000", "000000001"], "url": urls,
                                     "caption": [ENGLISH.format(f"galaxy number {2 * run + i}") for i in range(2)],
                                     "status": ["success"] * 2, "error_message": [None, None]}),
                           tmp_path / f"run{run}" / "00000.parquet")
        recipe = load_recipe(write_recipe(tmp_path / "r.yaml", before_download=[{"op": "caption"}]))
        clean(recipe, tmp_path / "out", [("web", str(tmp_path / f"run{run}")) for run in (0, 1)])
    rows = manifest_rows(tmp_path / "out")
    assert [(r["uid"], r["status"], r["reason"]) for r in sorted(rows, key=lambda r: (r["file_index"], r["row"]))] \
        == [("000000000", "kept", None), ("000000001", "kept", None)] * 2
    assert not any("error_message" in r for r in rows)
