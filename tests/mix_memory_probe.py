"""Run by tests/test_mix_memory.py in a fresh process: plan a mix over one canonical JSONL source the way
`vlforge mix` does (spill, counts, unit payloads, evaluation hashes) and print the peak RSS in KiB.

Usage: python tests/mix_memory_probe.py RECIPE.yaml PLAN_DIR
"""

import json
import sys
from pathlib import Path

from vlforge.pipelines.mix.images import eval_hashes
from vlforge.pipelines.mix.plan import make_plan, scan_sources
from vlforge.pipelines.mix.recipe import load_mix_recipe
from vlforge.pipelines.mix.run import make_units


def peak_rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(recipe_path: str, folder: str) -> None:
    recipe = load_mix_recipe(recipe_path)
    plan_dir = Path(folder)
    spilled = scan_sources(recipe, plan_dir)
    plan = make_plan(recipe, spilled)
    eval_hashes(recipe.exclude_eval, recipe.phash, plan_dir)
    units = make_units(recipe, plan, plan_dir.parent / "out", plan_dir)
    print(json.dumps({"records": spilled[0].count, "units": len(units), "peak_rss_kib": peak_rss_kib()}))


if __name__ == "__main__":
    main(*sys.argv[1:])
