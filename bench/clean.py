"""`vlforge clean` end to end, and at scale on metadata, against plain single-process loops doing the same work.

1. End to end on already-downloaded shards: img2dataset writes webdataset shards here (it downloads
   skimage photographs from a 127.0.0.1 server), then recipes/qwenvl-stage1.yaml cleans them on Ray.
   Baseline, same run: one Python loop that reads the same shards with the same readers, runs the same
   filter chain and writes tars with webdataset's TarWriter (no Ray, no units, manifests or dedup).
   Ray start-up and shut-down are reported apart from the throughput.
2. 1,000,000 metadata rows (LAION schema) through the same recipe in a subprocess; peak memory is the
   sum over the driver, the Ray workers and Ray's own daemons, sampled from /proc (RSS, and PSS, which
   counts shared pages once). Rows that survive the metadata and caption filters point at private
   addresses, which the guard refuses before connecting: nothing is downloaded, nothing leaves the host.
   Baseline, same run: one Python loop over the parquet batches with the same filter chain.

Run: .venv/bin/python bench/clean.py [--samples 20000] [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from demo_clean import serve  # the same static server on 127.0.0.1 the demo uses
from jsonline import report

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "qwenvl-stage1.yaml"
os.environ["NO_ALBUMENTATIONS_UPDATE"] = "1"  # img2dataset imports albumentations, which phones home otherwise
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")
WORDS = {
    "adj": ["red", "blue", "green", "small", "large", "old", "new", "wooden", "bright", "dark", "quiet", "busy"],
    "noun": ["cat", "dog", "house", "car", "tree", "boat", "bird", "chair", "table", "flower", "bicycle", "lamp"],
    "place": ["morning", "evening", "park", "garden", "city", "beach", "river", "market", "kitchen"],
}


def caption(rng: np.random.Generator, i: int) -> str:
    pick = {k: rng.choice(v, size=2) for k, v in WORDS.items()}
    return (f"A {pick['adj'][0]} {pick['noun'][0]} next to a {pick['adj'][1]} {pick['noun'][1]} "
            f"in the {pick['place'][0]}, photo {i}")


# ---------------------------------------------------------------- 1. end to end on img2dataset shards


def make_photos(folder: Path, n: int, rng: np.random.Generator) -> None:
    from PIL import Image
    from skimage import data

    sources = [np.asarray(Image.fromarray(getattr(data, name)()).resize((640, 640))) for name in PHOTOS]
    for i in range(n):
        src = sources[i % len(sources)]
        y, x = rng.integers(0, 640 - 320, size=2)
        Image.fromarray(src[y:y + 320, x:x + 256]).save(folder / f"{i}.jpg", quality=90)


def make_shards(tmp: Path, n: int, per_shard: int) -> Path:
    from img2dataset import download

    rng = np.random.default_rng(0)
    (tmp / "www").mkdir()
    make_photos(tmp / "www", n, rng)
    server = serve(tmp / "www")
    base = f"http://127.0.0.1:{server.server_address[1]}"
    pq.write_table(pa.table({"url": [f"{base}/{i}.jpg" for i in range(n)],
                             "caption": [caption(rng, i) for i in range(n)]}), tmp / "list.parquet")
    download(url_list=str(tmp / "list.parquet"), input_format="parquet", url_col="url", caption_col="caption",
             output_folder=str(tmp / "shards"), output_format="webdataset", processes_count=1, thread_count=16,
             number_sample_per_shard=per_shard, resize_mode="no", disable_all_reencoding=True, timeout=10,
             enable_wandb=False)
    server.shutdown()
    return tmp / "shards"


def baseline_loop(recipe, source: str, shards: Path, out: Path) -> int:
    """The same reading, filters and tar writing, in one process, one shard after another."""
    import webdataset

    from vlforge.filters.base import run_filters
    from vlforge.pipelines.clean.recipe import make_filter
    from vlforge.sources.dumps.img2dataset import read_shard_images
    from vlforge.sources.dumps.readers import list_inputs, read_range

    before = [make_filter(s) for s in recipe.source_steps(source, "before_download")]
    after = [make_filter(s) for s in recipe.source_steps(source, "after_download")]
    files = list_inputs([(source, str(shards))], {source: recipe.sources[source].overrides()})
    out.mkdir()
    kept = 0
    for f in files:
        table = pa.concat_tables(list(read_range(f)))
        table, _ = run_filters(table.filter(pc.equal(table["status"], "success")), before)
        images = read_shard_images(f.tar, table["key"].to_pylist())
        table = table.append_column("image", pa.array([images.get(k) for k in table["key"].to_pylist()]))
        table, _ = run_filters(table, after)
        with webdataset.TarWriter(str(out / f"{f.file_index:05d}.tar"), encoder=False) as tar:
            for r in table.to_pylist():
                meta = {"uid": r["uid"], "url": r["url"], "width": r["width"], "height": r["height"], "lang": r["lang"]}
                tar.write({"__key__": r["uid"], r["image_ext"]: r["image"], "txt": r["caption"].encode(),
                           "json": json.dumps(meta).encode()})
        kept += table.num_rows
    return kept


def bench_end_to_end(tmp: Path, samples: int) -> None:
    from vlforge.pipelines.clean.recipe import load_recipe
    from vlforge.pipelines.clean.run import clean

    shards = make_shards(tmp, samples, per_shard=500)
    source = "cc3m"  # a source with no shipped CLIP score, like img2dataset output
    recipe = load_recipe(RECIPE, {f"sources.{source}.schema": "img2dataset", "num_cpus": 2, "rows_per_unit": 500})
    t0 = time.perf_counter()
    kept_base = baseline_loop(recipe, source, shards, tmp / "baseline")
    base = samples / (time.perf_counter() - t0)
    result = clean(recipe, tmp / "out", [(source, str(shards))])
    work_s = result.elapsed_s - result.ray_start_s - result.ray_stop_s
    ours = samples / work_s
    kept = result.summary[source]["kept"]
    print(f"end to end on {samples} img2dataset samples: {ours:,.0f} samples/s on Ray (2 CPUs, without start/stop), "
          f"plain loop {base:,.0f} samples/s; kept {kept} (loop {kept_base}); Ray start {result.ray_start_s:.1f} s, "
          f"stop {result.ray_stop_s:.1f} s, whole run {result.elapsed_s:.1f} s")
    report("clean", "end_to_end_samples_per_s", ours, "samples/s", base)
    report("clean", "end_to_end_ray_start_s", result.ray_start_s, "s", None)
    report("clean", "end_to_end_ray_stop_s", result.ray_stop_s, "s", None)


# ---------------------------------------------------------------- 2. one million metadata rows


def make_metadata(path: Path, rows: int) -> None:
    rng = np.random.default_rng(1)
    writer = None
    for start in range(0, rows, 100_000):
        n = min(100_000, rows - start)
        ids = np.arange(start, start + n)
        table = pa.table({
            "SAMPLE_ID": ids,
            "URL": [f"http://10.{i % 250}.{(i // 250) % 250}.7/{i}.jpg" for i in ids],
            "TEXT": [caption(rng, i) for i in ids],
            "WIDTH": rng.integers(64, 2048, n).astype(np.float64),
            "HEIGHT": rng.integers(64, 2048, n).astype(np.float64),
            "similarity": rng.uniform(0.26, 0.40, n),
        })
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=50_000)
    writer.close()


def _session_memory(sid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over the processes of a session."""
    rss = pss = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) != sid:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss


def run_measured(argv: list[str]) -> tuple[float, int, int, str]:
    """Run a command in its own session; (seconds, peak RSS sum, peak PSS sum, stderr)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak_rss = peak_pss = 0
    output: dict[str, str] = {}
    reader = threading.Thread(target=lambda: output.update(zip(("out", "err"), proc.communicate(), strict=True)))
    reader.start()
    while reader.is_alive():
        rss, pss = _session_memory(proc.pid)
        peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        time.sleep(0.2)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed:\n{output.get('err', '')[-3000:]}")
    return time.perf_counter() - t0, peak_rss, peak_pss, output.get("err", "")


def baseline_metadata(path: str) -> None:
    """Subprocess entry: the recipe's before-download chain over the parquet, batch by batch, one process."""
    from vlforge.filters.base import run_filters
    from vlforge.pipelines.clean.recipe import load_recipe, make_filter
    from vlforge.sources.dumps.readers import list_inputs, read_range

    recipe = load_recipe(RECIPE)
    chain = [make_filter(s) for s in recipe.source_steps("laion-en", "before_download")]
    kept = 0
    for f in list_inputs([("laion-en", path)], {}):
        for batch in read_range(f, batch_size=5000):
            survivors, _ = run_filters(batch.filter(pc.is_null(batch["read_error"])), chain)
            kept += survivors.num_rows
    print(json.dumps({"kept": kept}))


def bench_metadata(tmp: Path, rows: int) -> None:
    path = tmp / "laion.parquet"
    make_metadata(path, rows)
    base_s, base_rss, base_pss, _ = run_measured([sys.executable, __file__, "--baseline-metadata", str(path)])
    cli = ("import argparse, sys; from vlforge.pipelines.clean.run import add_clean_parser, run_clean; "
           "p = argparse.ArgumentParser(); add_clean_parser(p.add_subparsers()); "
           "sys.exit(run_clean(p.parse_args(sys.argv[1:])))")
    ours_s, rss, pss, err = run_measured([sys.executable, "-c", cli, "clean", "--recipe", str(RECIPE), "--input",
                                          f"laion-en={path}", "--out", str(tmp / "meta-out"), "--num-cpus", "2"])
    start, stop = (float(x) for x in re.search(r"ray start ([0-9.]+)s, stop ([0-9.]+)s", err).groups())
    work = ours_s - start - stop
    gib = 1 << 30
    print(f"{rows:,} metadata rows: {rows / work:,.0f} rows/s on Ray (2 CPUs, without start/stop), plain loop "
          f"{rows / base_s:,.0f} rows/s; peak memory driver+workers+Ray daemons RSS {rss / gib:.2f} GiB, "
          f"PSS {pss / gib:.2f} GiB (plain loop RSS {base_rss / gib:.2f} GiB); Ray start {start:.1f} s, "
          f"stop {stop:.1f} s")
    report("clean", "metadata_rows_per_s", rows / work, "rows/s", rows / base_s)
    report("clean", "metadata_peak_rss_gib", rss / gib, "GiB", base_rss / gib)
    report("clean", "metadata_peak_pss_gib", pss / gib, "GiB", base_pss / gib)
    report("clean", "metadata_ray_start_s", start, "s", None)
    report("clean", "metadata_ray_stop_s", stop, "s", None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20000, help="img2dataset samples for the end-to-end run")
    parser.add_argument("--rows", type=int, default=1_000_000, help="metadata rows for the memory run")
    parser.add_argument("--baseline-metadata", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_metadata:
        baseline_metadata(args.baseline_metadata)
        return
    with tempfile.TemporaryDirectory(prefix="vlforge-bench-clean-") as tmp:
        (Path(tmp) / "e2e").mkdir()
        bench_end_to_end(Path(tmp) / "e2e", args.samples)
        (Path(tmp) / "meta").mkdir()
        bench_metadata(Path(tmp) / "meta", args.rows)


if __name__ == "__main__":
    main()
