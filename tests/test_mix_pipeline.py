"""`vlforge mix` end to end on Ray over fixtures of every public layout: what lands in the shards and manifests."""

import hashlib
import io
import json
import shutil

import pyarrow.parquet as pq
import pytest
from mix_support import mix_layouts, read_tar_samples, sample_json, write_recipe
from PIL import Image

from vlforge.cli import main as cli
from vlforge.pipelines.mix.recipe import MixError, load_mix_recipe
from vlforge.pipelines.mix.run import build_mixture
from vlforge.shards.manifest import read_manifests
from vlforge.shards.verify import verify_dir
from vlforge.shards.writer import ShardWriter


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return mix_layouts.write_all(tmp_path_factory.mktemp("layouts"))


@pytest.fixture(scope="module")
def mixed(fx, tmp_path_factory, ray_local):
    root = tmp_path_factory.mktemp("mix")
    recipe = load_mix_recipe(write_recipe(root / "mix.yaml", mix_layouts.recipe(fx)))
    result = build_mixture(recipe, root / "out")
    return root / "out", result, recipe


def _rows(out):
    return read_manifests(out).to_pylist()


def test_every_planned_sample_has_one_manifest_row(mixed):
    out, _, _ = mixed
    rows = _rows(out)
    assert sorted(r["position"] for r in rows) == list(range(26))
    assert verify_dir(out).ok
    kept = read_tar_samples(out)
    assert len(kept) == sum(r["status"] == "kept" for r in rows) == 23


def test_drop_reasons_per_source(mixed):
    out, _, _ = mixed
    drops = {(r["source"], r["reason"]) for r in _rows(out) if r["status"] == "dropped"}
    assert drops == {("coco", "image_missing"), ("refcoco", "box_outside_image"), ("vg", "box_outside_image")}
    clipped = {r["uid"]: r["boxes_clipped"] for r in _rows(out) if r["source"] == "refcoco" and r["status"] == "kept"}
    assert clipped["ref:1:2"] == 1 and clipped["ref:0:0"] == 0


def test_mix_json_holds_the_realised_mix(mixed):
    out, result, _ = mixed
    mix = json.loads((out / "mix.json").read_text())
    assert mix["sources"]["coco"] == {"task": "caption", "planned": 4, "kept": 3, "dropped": 1,
                                      "reasons": {"image_missing": 1}}
    assert mix["tasks"] == {"chat": 1, "caption": 3, "vqa": 9, "ref_grounding": 3, "grounded_caption": 2,
                            "grounding": 2, "text": 3}
    assert mix["est_tokens"]["text"]["min"] == len("Pure text from JSONL.")
    assert mix["duplicates"]["sha256"] == {"images": 2, "by_sources": {"refcoco+vqav2": 2}}
    assert mix["duplicates"]["phash"]["by_sources"] == {"refcoco+vqav2": 2}
    assert result.summary["tasks"] == mix["tasks"]


def test_ai2d_renders_lettered_options_and_the_letter_as_answer(mixed):
    out, _, _ = mixed
    samples = {sample_json(f)["meta"]["uid"]: sample_json(f) for f in read_tar_samples(out).values()}
    assert {uid for uid in samples if uid.startswith("ai2d:")} == {"ai2d:4.png-0", "ai2d:4.png-1"}  # 9.png: test id
    assert [s["text"] for s in samples["ai2d:4.png-1"]["segments"]] == [
        "<img></img>", "What does label B show?\nOptions: A. adult\nB. egg\nC. larva\nD. pupa Answer:", " D"]


def test_images_copied_when_they_fit_else_reencoded_to_the_cap(mixed, fx):
    out, _, _ = mixed
    samples = {sample_json(f)["meta"]["uid"]: f for f in read_tar_samples(out).values()}
    chat = samples["chat:1"]
    assert chat["0.jpg"] == (fx["chat"].parent / "images/a.jpg").read_bytes()  # 320x240 JPEG: byte for byte
    assert chat["1.jpg"] == (fx["chat"].parent / "images/b.jpg").read_bytes()
    doc = samples["docvqa:337"]["0.jpg"]  # a 600x800 PNG
    with Image.open(io.BytesIO(doc)) as im:
        assert (im.format, im.size) == ("JPEG", (336, 448))
    assert sample_json(samples["docvqa:337"])["meta"]["sizes"] == [[600, 800]]


def test_sample_json_carries_segments_and_estimated_length(mixed):
    out, _, _ = mixed
    samples = {sample_json(f)["meta"]["uid"]: sample_json(f) for f in read_tar_samples(out).values()}
    ref = samples["ref:0:0"]
    assert [s["text"] for s in ref["segments"]] == ["<img></img>", "<ref>man on the left</ref>",
                                                    "<box>(100,100),(300,300)</box>"]
    assert ref["est_tokens"] == len("<ref>man on the left</ref><box>(100,100),(300,300)</box>") + 258
    chat = samples["chat:1"]
    text = "".join(s["text"] for s in chat["segments"])
    assert text.count("<img></img>") == 2 and chat["est_tokens"] == len(text) - 22 + 2 * 258
    assert samples["grit:1001"]["segments"][2]["text"] == "<ref> the red car</ref><box>(250,500),(999,750)</box>"


def test_same_recipe_and_seed_give_the_same_bytes_and_a_rerun_changes_nothing(mixed, tmp_path):
    out, _, recipe = mixed
    again = build_mixture(recipe, tmp_path / "again")
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.tar"))}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp_path / "again").glob("*.tar"))
            } == digest
    assert again.summary == mixed[1].summary
    rerun = build_mixture(recipe, out)
    assert rerun.report.stats == [] and len(rerun.report.skipped) == 4


def test_executor_processes_mixes_the_same_bytes(mixed, tmp_path):
    out, result, recipe = mixed
    forked = build_mixture(recipe.model_copy(update={"executor": "processes"}), tmp_path / "forked")
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.tar"))}
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((tmp_path / "forked").glob("*.tar"))
            } == digest
    assert forked.summary == result.summary


def test_a_rerun_with_another_recipe_is_refused_naming_the_change(mixed):
    out, _, recipe = mixed
    with pytest.raises(ValueError, match=r"changed: .*recipe\.seed: 0 -> 1"):
        build_mixture(recipe.model_copy(update={"seed": 1}), out)


def test_exclude_eval_drops_images_of_the_evaluation_set(fx, tmp_path, ray_local):
    evals = tmp_path / "eval"
    evals.mkdir()
    shutil.copy(fx["gqa"]["images"] / "2354786.jpg", evals / "same-bytes.jpg")
    with Image.open(fx["textvqa"][1] / "0054c91397f2fe05.jpg") as im:  # re-encoded smaller: same pHash only
        im.resize((512, 384)).save(evals / "smaller.png")
    data = mix_layouts.recipe(fx, exclude_eval=[str(evals)])
    build_mixture(load_mix_recipe(write_recipe(tmp_path / "mix.yaml", data)), tmp_path / "out")
    dropped = {r["source"] for r in _rows(tmp_path / "out") if r["reason"] == "in_eval_set"}
    assert dropped == {"gqa", "textvqa"}


def test_missing_or_malformed_sources_fail_before_any_work(fx, tmp_path, capsys):
    data = mix_layouts.recipe(fx)
    data["sources"][2]["from"]["questions"] = str(tmp_path / "missing.json")
    path = write_recipe(tmp_path / "mix.yaml", data)
    assert cli(["mix", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "sources.2 (gqa, gqa): questions: no such file" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    bad = tmp_path / "bad.json"
    bad.write_text('{"questions": [], "annotations": 3}')
    data["sources"][2] = {**data["sources"][1], "name": "vqa-bad", "from": {**data["sources"][1]["from"],
                                                                            "annotations": str(bad)}}
    with pytest.raises(MixError, match="annotations: expected a JSON list, got int"):
        build_mixture(load_mix_recipe(write_recipe(tmp_path / "mix.yaml", data)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_manifests_have_task_and_source_columns_for_stats(mixed):
    out, _, _ = mixed
    table = pq.read_table(sorted((out / "__manifests").glob("*.parquet"))[0])
    assert {"task", "source", "est_tokens", "sha256", "phash", "position"} <= set(table.column_names)


def test_ocr_and_captions_from_shards_keep_their_bytes(tmp_path, ray_local):
    jpeg = mix_layouts.photo(3, (64, 48))
    lines = [{"text": "HELLO", "quad": [[1, 2], [30, 2], [30, 10], [1, 10]]}]
    with ShardWriter(tmp_path / "ocr", "synthdog-en-00000000") as w:
        w.write("en_000000001", {"jpg": jpeg, "json": {"task": "ocr", "lines": lines, "lang": "en"}}, {"uid": "s"})
    with ShardWriter(tmp_path / "clean", "clean-00000") as w:
        w.write("0000_01", {"jpg": mix_layouts.photo(4, (64, 48)), "txt": "a kite", "json": {"lang": "zh"}},
                {"uid": "c"})
    data = {"name": "shards", "sources": [
        {"name": "ocr", "task": "ocr", "count": 1, "from": {"adapter": "shards", "kind": "synthdog",
                                                             "paths": [str(tmp_path / "ocr")]}},
        {"name": "web", "task": "caption", "count": 1, "from": {"adapter": "shards", "kind": "clean",
                                                                 "paths": [str(tmp_path / "clean")]}}]}
    build_mixture(load_mix_recipe(write_recipe(tmp_path / "mix.yaml", data)), tmp_path / "out")
    samples = {sample_json(f)["source"]: f for f in read_tar_samples(tmp_path / "out").values()}
    assert samples["ocr"]["0.jpg"] == jpeg
    # (1,2),(30,2),(30,10),(1,10) on 64x48: x 15.6 -> 15, 468.75 -> 468; y 41.7 -> 41, 208.3 -> 208
    assert sample_json(samples["ocr"])["segments"][2]["text"] == (
        "<ref>HELLO</ref><quad>(15,41),(468,41),(468,208),(15,208)</quad>")
    assert sample_json(samples["web"])["segments"][1]["text"] == "Generate the caption in Chinese:"


def test_a_rerun_after_an_annotation_file_changed_is_refused(fx, tmp_path, ray_local):
    questions = tmp_path / "train_balanced_questions.json"
    shutil.copy(fx["gqa"]["questions"], questions)
    data = {"name": "gqa", "sources": [{"name": "gqa", "task": "vqa", "weight": 1, "from": {
        "adapter": "gqa", "questions": str(questions), "images": str(fx["gqa"]["images"])}}]}
    recipe = load_mix_recipe(write_recipe(tmp_path / "mix.yaml", data))
    build_mixture(recipe, tmp_path / "out")
    edited = json.loads(questions.read_text())
    edited["02930152"]["answer"] = "no"
    questions.write_text(json.dumps(edited))
    with pytest.raises(ValueError, match=r"changed: .*records\.gqa"):
        build_mixture(recipe, tmp_path / "out")


def test_an_output_directory_with_foreign_files_is_refused(fx, tmp_path, ray_local, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    path = write_recipe(tmp_path / "mix.yaml", mix_layouts.recipe(fx))
    assert cli(["mix", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "holds files vlforge did not write (notes.txt)" in capsys.readouterr().err
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_a_missing_evaluation_directory_fails_before_any_work(fx, tmp_path, capsys):
    path = write_recipe(tmp_path / "mix.yaml", mix_layouts.recipe(fx))
    assert cli(["mix", "--recipe", str(path), "--out", str(tmp_path / "out"),
                "--exclude-eval", str(tmp_path / "no-eval")]) == 2
    assert "exclude_eval: no such directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_an_output_inside_an_input_folder_is_refused_before_anything_is_written(fx, capsys):
    images = fx["gqa"]["images"]
    before = sorted(p.name for p in images.iterdir())
    path = write_recipe(images.parent / "mix.yaml", mix_layouts.recipe(fx))
    assert cli(["mix", "--recipe", str(path), "--out", str(images / "mix")]) == 2
    assert "is inside the input" in capsys.readouterr().err
    assert sorted(p.name for p in images.iterdir()) == before  # no staging folder, no output


def test_ocr_from_canonical_jsonl_and_shard_byte_cap(tmp_path, ray_local):
    lines = [{"text": "HELLO", "quad": [[1, 2], [30, 2], [30, 10], [1, 10]]}]
    (tmp_path / "img").mkdir()
    records = []
    for k in range(3):
        (tmp_path / "img" / f"{k}.jpg").write_bytes(mix_layouts.photo(10 + k, (64, 48)))
        records.append(json.dumps({"image": f"img/{k}.jpg", "lines": lines}))
    (tmp_path / "ocr.jsonl").write_text("\n".join(records) + "\n", encoding="utf-8")
    data = {"name": "ocr", "shards": {"max_bytes": 1}, "sources": [
        {"name": "ocr", "task": "ocr", "weight": 1, "from": {"adapter": "jsonl", "path": str(tmp_path / "ocr.jsonl")}}]}
    build_mixture(load_mix_recipe(write_recipe(tmp_path / "mix.yaml", data)), tmp_path / "out")
    # a byte cap below one sample: every sample in a tar of its own
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tar")) == [f"mix-00000-{k:06d}.tar" for k in range(3)]
    samples = read_tar_samples(tmp_path / "out")
    assert len(samples) == 3
    for files in samples.values():
        # (1,2),(30,2),(30,10),(1,10) on 64x48: x 15.6 -> 15, 468.75 -> 468; y 41.7 -> 41, 208.3 -> 208
        assert sample_json(files)["segments"][2]["text"] == (
            "<ref>HELLO</ref><quad>(15,41),(468,41),(468,208),(15,208)</quad>")
