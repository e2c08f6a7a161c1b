"""Render stage: shard writing and `vlforge render` throughput against plain loops doing the same work.

Baselines, measured in the same run: webdataset's TarWriter alone (no atomic commit, no manifest) for the
writer, and a single-process loop calling the same decode + render + TarWriter for the pipeline.
Run: .venv/bin/python bench/render.py [--lines N]
"""

import argparse
import json
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import webdataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonline import report

from vlforge.pipelines.executor import executor_session
from vlforge.pipelines.render import RenderOptions, render_line, run_render
from vlforge.shards.writer import ShardWriter

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tasks"
IMAGES = ["astronaut", "coffee", "chelsea", "rocket"]


def make_input(tmp: Path, lines: int) -> Path:
    shutil.copytree(EXAMPLES / "images", tmp / "images")
    path = tmp / "captions.jsonl"
    with open(path, "w") as f:
        for i in range(lines):
            record = {"image": f"images/{IMAGES[i % 4]}.jpg", "caption": f"photo number {i}"}
            f.write(json.dumps(record) + "\n")
    return path


def bench_writer(tmp: Path, n: int) -> None:
    payload = (EXAMPLES / "images/astronaut.jpg").read_bytes()
    t0 = time.perf_counter()
    with ShardWriter(tmp / "ours", "w", max_samples=1000) as w:
        for i in range(n):
            w.write(f"s{i}", {"jpg": payload, "json": {"i": i}}, {"uid": str(i), "source": "b"})
    ours = n / (time.perf_counter() - t0)
    (tmp / "base").mkdir()
    t0 = time.perf_counter()
    tar = None
    for i in range(n):
        if i % 1000 == 0:
            if tar:
                tar.close()
            tar = webdataset.TarWriter(str(tmp / "base" / f"w-{i // 1000:06d}.tar"), encoder=False)
        tar.write({"__key__": f"s{i}", "jpg": payload, "json": json.dumps({"i": i}).encode()})
    tar.close()
    base = n / (time.perf_counter() - t0)
    print(f"shard writer: {ours:,.0f} samples/s, plain TarWriter {base:,.0f} samples/s")
    report("render", "shard_writer_samples_per_s", ours, "samples/s", base)


def bench_render(tmp: Path, lines: int) -> None:
    jsonl = make_input(tmp, lines)
    t0 = time.perf_counter()
    tar = webdataset.TarWriter(str(tmp / "loop.tar"), encoder=False)
    for n, line in enumerate(jsonl.read_text().splitlines(), 1):
        sample, images, _ = render_line(line, jsonl.parent, "caption")
        tar.write({"__key__": f"s{n}", "0.jpg": images[0], "json": json.dumps(sample).encode()})
    tar.close()
    base = lines / (time.perf_counter() - t0)
    with executor_session(num_cpus=2) as session:
        session.wait()  # Ray's start is reported apart, not timed as render work
        t0 = time.perf_counter()
        run_render([jsonl], tmp / "out", RenderOptions(task="caption", lines_per_unit=max(1, lines // 8)))
        ours = lines / (time.perf_counter() - t0)
    print(f"render: {ours:,.0f} samples/s on Ray (2 CPUs), single-process loop {base:,.0f} samples/s; "
          f"Ray start {session.start_s:.1f} s, stop {session.stop_s:.1f} s")
    report("render", "render_samples_per_s", ours, "samples/s", base)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=8000)
    parser.add_argument("--writer-samples", type=int, default=20000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_writer(Path(tmp) / "writer", args.writer_samples)
        bench_render(Path(tmp) / "render", args.lines)
    print(f"driver peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
