"""`vlforge stats` on 10 million manifest rows in 100 parquet files, against the same aggregation in pandas.

The rows have the columns `vlforge clean` writes (source, status, reason, stage, sizes, CLIP score, caption
length, language, ...) with realistic drop rates. Ours: every table `vlforge stats` prints (funnel, reasons,
languages, quantiles of four measures per source and kept/dropped), DuckDB reading the files in place. Baseline:
pandas reading the same files (only the needed columns) and computing the same numbers; its answers are checked
against ours. Each figure is the fastest of --repeats runs.
Run: .venv/bin/python bench/stats.py [--rows N] [--files N] [--repeats N]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonline import report

from vlforge.shards.manifest import MANIFEST_DIR, MANIFEST_SUFFIX
from vlforge.stats.manifests import connect, find_outputs
from vlforge.stats.tables import QUANTILES, compute_tables

SOURCES = np.array(["laion", "coyo", "datacomp", "cc12m"])
REASONS = np.array(["duplicate_url", "aspect_ratio>3", "min_side<64", "clip_score<0.28", "caption_words<2",
                    "lang_not_en_zh", "http_404", "timeout", "image_corrupt"])
STAGES = np.array(["dedup", "aspect_ratio", "image_size", "clip_score", "caption", "language", "download",
                   "download", "image"])
LANGS = np.array(["en", "en", "en", "zh", "de"])


def write_files(out: Path, rows: int, files: int, seed: int = 0) -> None:
    """`files` manifests of rows/files rows each, written the way the shard writer names them."""
    (out / MANIFEST_DIR).mkdir(parents=True)
    rng = np.random.default_rng(seed)
    per_file = rows // files
    for f in range(files):
        n = per_file
        dropped = rng.random(n) < 0.45
        reason_idx = rng.integers(0, len(REASONS), n)
        width = np.clip(rng.lognormal(6.2, 0.6, n), 16, 12000).astype(np.int64)
        height = np.clip(width * rng.lognormal(-0.2, 0.45, n), 16, 12000).astype(np.int64)
        clip = rng.normal(0.31, 0.05, n)
        table = pa.table({
            "uid": pa.array(np.char.add(f"{f:03d}-", np.arange(n).astype(str))),
            "source": pa.array(SOURCES[rng.integers(0, len(SOURCES), n)]),
            "status": pa.array(np.where(dropped, "dropped", "kept")),
            "reason": pa.array(np.where(dropped, REASONS[reason_idx], None)),
            "stage": pa.array(np.where(dropped, STAGES[reason_idx], None)),
            "tar": pa.array(np.where(dropped, None, f"unit{f:03d}-000000.tar")),
            "key": pa.array(np.where(dropped, None, np.arange(n).astype(str))),
            "url": pa.array(np.char.add("http://127.0.0.1:9/", np.arange(n).astype(str))),
            "row": pa.array(np.arange(n)),
            "width": pa.array(width), "height": pa.array(height),
            "clip_score": pa.array(clip, mask=rng.random(n) < 0.05),
            "caption_chars": pa.array(rng.integers(5, 400, n)),
            "lang": pa.array(LANGS[rng.integers(0, len(LANGS), n)]),
        })
        pq.write_table(table, out / MANIFEST_DIR / f"unit{f:03d}{MANIFEST_SUFFIX}")


def ours(out: Path) -> dict:
    tables = {t.name: t for t in compute_tables(connect(find_outputs([out])))}
    return {"funnel": {r["source"]: (r["read"], r["kept"]) for r in tables["funnel"].records()},
            "p50": {(r["source"], r["status"], r["metric"]): r["p50"] for r in tables["distributions"].records()}}


def pandas_stats(out: Path) -> dict:
    """The same tables in pandas: funnel, reasons, languages, quantiles of the four measures."""
    df = pd.read_parquet(out / MANIFEST_DIR, columns=["source", "status", "reason", "stage", "lang", "width",
                                                      "height", "clip_score", "caption_chars"])
    kept = df["status"] == "kept"
    funnel = df.groupby("source").size().to_frame("read").join(df[kept].groupby("source").size().to_frame("kept"))
    df[~kept].groupby(["source", "stage", "reason"]).size()  # reasons
    df[kept].groupby("lang").size() / kept.sum()  # languages
    w, h = df["width"].astype(float), df["height"].astype(float)
    sized = (w > 0) & (h > 0)
    measures = pd.DataFrame({"source": df["source"], "status": df["status"],
                             "aspect_ratio": np.maximum(w, h).where(sized) / np.minimum(w, h).where(sized),
                             "shorter_side": np.minimum(w, h).where(sized), "clip_score": df["clip_score"],
                             "caption_chars": df["caption_chars"].astype(float)})
    long = measures.melt(id_vars=["source", "status"], var_name="metric").dropna()
    grouped = long.groupby(["source", "status", "metric"])["value"]
    quantiles = grouped.quantile(list(QUANTILES)).unstack()
    grouped.agg(["count", "mean"])
    return {"funnel": {s: (int(r.read), int(r.kept)) for s, r in funnel.iterrows()},
            "p50": {k: round(float(v), 4) for k, v in quantiles[0.5].items()}}


def fastest(fn, arg: Path, repeats: int) -> tuple[float, dict]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn(arg)
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vlforge-bench-stats-") as tmp:
        out = Path(tmp) / "clean"
        start = time.perf_counter()
        write_files(out, args.rows, args.files)
        print(f"wrote {args.rows:,} manifest rows in {args.files} files in {time.perf_counter() - start:.1f} s")
        duck_s, duck = fastest(ours, out, args.repeats)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        pandas_s, theirs = fastest(pandas_stats, out, args.repeats)
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert duck["funnel"] == theirs["funnel"], (duck["funnel"], theirs["funnel"])
    for key, value in theirs["p50"].items():
        assert abs(duck["p50"][key] - value) <= 1e-3 * max(1.0, abs(value)), (key, duck["p50"][key], value)
    rows_per_s = args.rows / duck_s
    print(f"vlforge stats (DuckDB): {duck_s:.2f} s  ({rows_per_s / 1e6:.1f}M rows/s)")
    print(f"pandas, same tables:    {pandas_s:.2f} s  ({pandas_s / duck_s:.1f}x slower; peak RSS grew "
          f"{(rss_after - rss_before) / 1e6:.1f} GB while it ran)")
    report("stats", f"stats_{args.rows / 1e6:g}M_rows_s", duck_s, "s", pandas_s)
    report("stats", "rows_per_s", rows_per_s, "rows/s", args.rows / pandas_s)


if __name__ == "__main__":
    main()
