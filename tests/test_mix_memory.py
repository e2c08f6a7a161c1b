"""Bounded memory: planning a mix over a source 20x larger must not raise the planner's peak RSS
(measured by the kernel, VmHWM, in a fresh process) by more than GROWTH_LIMIT_MIB.

Holding the records in memory, as the first planner did, costs ~700 bytes a record: 380,000 more records
would add ~250 MiB. Spilled to disk, only the unit counts grow (a few bytes per unit).
"""

import json
import subprocess
import sys

import pytest
from mix_support import ROOT, write_recipe

pytestmark = pytest.mark.slow
GROWTH_LIMIT_MIB = 40
SMALL, LARGE = 20_000, 400_000


def _jsonl(path, n: int) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"image": f"images/{i:08d}.jpg",
                                "caption": f"a photograph number {i} of a red kite over a green field"}) + "\n")


def _peak(tmp_path, n: int) -> dict:
    folder = tmp_path / str(n)
    (folder / "plan").mkdir(parents=True)
    _jsonl(folder / "captions.jsonl", n)
    recipe = write_recipe(folder / "mix.yaml", {"name": "memory", "samples_per_unit": 1000, "sources": [
        {"name": "captions", "task": "caption", "weight": 1, "from": {"adapter": "jsonl",
                                                                       "path": str(folder / "captions.jsonl")}}]})
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "mix_memory_probe.py"), str(recipe),
                           str(folder / "plan")], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_planning_memory_does_not_grow_with_the_source(tmp_path):
    small, large = _peak(tmp_path, SMALL), _peak(tmp_path, LARGE)
    assert (small["records"], large["records"]) == (SMALL, LARGE)
    assert large["units"] == LARGE // 1000
    growth_mib = (large["peak_rss_kib"] - small["peak_rss_kib"]) / 1024
    print(f"peak RSS {small['peak_rss_kib'] / 1024:.0f} MiB at {SMALL} records, "
          f"{large['peak_rss_kib'] / 1024:.0f} MiB at {LARGE}: +{growth_mib:.1f} MiB")
    assert growth_mib < GROWTH_LIMIT_MIB
