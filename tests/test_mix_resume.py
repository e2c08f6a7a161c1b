"""Exactly once: SIGKILL `vlforge mix` after some units committed, run the same command again, and compare
with an uninterrupted run: the same tars byte for byte and the same manifest rows, nothing lost or doubled."""

import hashlib
import json
import subprocess
import sys
import time

import pytest
from mix_support import mix_layouts, write_recipe
from processes import kill_session

from vlforge.pipelines.mix.recipe import load_mix_recipe
from vlforge.pipelines.mix.run import build_mixture
from vlforge.shards.manifest import MANIFEST_DIR, read_manifests
from vlforge.shards.verify import verify_dir

pytestmark = pytest.mark.slow
UNITS = 24


@pytest.fixture(scope="module")
def recipe_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    lines = []
    for i in range(UNITS * 6):
        (root / "img").mkdir(exist_ok=True)
        (root / "img" / f"{i}.jpg").write_bytes(mix_layouts.photo(i, (800, 600)))  # over the cap: re-encoded
        lines.append(json.dumps({"image": f"img/{i}.jpg", "caption": f"picture number {i}"}))
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n")
    (root / "text.txt").write_text("".join(f"text line {i}\n" for i in range(UNITS * 4)))
    return write_recipe(root / "mix.yaml", {"name": "resume", "seed": 7, "samples_per_unit": 10, "sources": [
        {"name": "captions", "task": "caption", "weight": 3,
         "from": {"adapter": "jsonl", "path": str(root / "captions.jsonl")}},
        {"name": "text", "task": "text", "weight": 2, "from": {"adapter": "text", "paths": [str(root / "text.txt")]}},
    ]})


def _digests(out):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.glob("*.tar"))}


def _rows(out):
    return sorted(read_manifests(out).select(["uid", "source", "task", "status", "position", "tar", "key"])
                  .to_pylist(), key=lambda r: r["position"])


def test_killed_run_resumes_to_the_uninterrupted_result(recipe_path, tmp_path, ray_local):
    reference = tmp_path / "reference"
    build_mixture(load_mix_recipe(recipe_path), reference)
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "vlforge.cli", "mix", "--recipe", str(recipe_path), "--out", str(out),
               "--num-cpus", "2"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 300
    while len(list((out / MANIFEST_DIR).glob("*.parquet"))) < 2:
        assert proc.poll() is None, f"the run ended before the kill point: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert kill_session(proc)
    proc.wait(timeout=30)
    committed = len(list((out / MANIFEST_DIR).glob("*.parquet")))
    assert 2 <= committed < 20, "the kill came too late to test a resume"
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"skipped (already committed) {committed}" in again.stderr
    assert verify_dir(out).ok
    assert _digests(out) == _digests(reference)
    assert _rows(out) == _rows(reference)
    assert json.loads((out / "mix.json").read_text())["sources"] == json.loads(
        (reference / "mix.json").read_text())["sources"]
