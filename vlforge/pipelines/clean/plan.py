"""Phase 1 of `vlforge clean`: work units, run-wide URL/uid duplicates and top-fraction CLIP thresholds.

One Ray task per input file splits it into row ranges (the units), writes the hash keys of every readable
row's URL and (source, uid), and fills per-source score histograms. Duplicates are then found per hash
partition (`keys.py`). `_plan/plan.json` is written last: without it the plan is redone from scratch, and
with it a rerun reuses the same units, duplicates and thresholds.

Known trade-off: URL/uid duplicates are decided before filtering, so when the first copy of a URL is
later dropped (say, for its caption) the other copies are dropped as duplicates all the same.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from vlforge.filters.base import ScoreHistogram
from vlforge.pipelines.clean.keys import (
    find_duplicates,
    hash_values,
    key_path,
    order_keys,
    partition_bits,
    partition_jobs,
    write_keys,
)
from vlforge.pipelines.clean.recipe import CleanRecipe, RecipeError
from vlforge.pipelines.executor import SESSION_KEYS, Unit, run_tasks
from vlforge.pipelines.fingerprint import plan_fingerprint
from vlforge.shards.atomic import write_json
from vlforge.shards.units import committed_units
from vlforge.sources.dumps.readers import InputFile, RowRange, plan_ranges, read_range
from vlforge.sources.dumps.schemas import SCHEMAS

PLAN_DIR = "_plan"
DUPLICATE_KINDS = ("uid", "url")  # checked in this order: the same sample twice is reported as such


@dataclass(frozen=True)
class CleanJob:
    """What every planning or unit task shares (not the input files: a unit carries only its own); pickled into each."""

    recipe: CleanRecipe
    out_dir: str
    thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # top-fraction step -> source
    partition_bits: int = 0
    pools: Mapping[str, list] = field(default_factory=dict)  # actor step name -> actor handles

    @property
    def plan_dir(self) -> Path:
        return Path(self.out_dir) / PLAN_DIR

    def dedup_kinds(self) -> list[str]:
        return [kind for kind in DUPLICATE_KINDS if getattr(self.recipe.dedup, kind)]


@dataclass(frozen=True)
class CleanWork:
    """A clean unit's payload: which rows of which input file, and the job they belong to.

    It holds its own `InputFile` and no list of them, so pickling the units costs O(units), not O(files x units).
    """

    job: CleanJob
    file: InputFile
    range: RowRange

    @property
    def file_index(self) -> int:
        return self.file.file_index


def unit_id(file_index: int, row_start: int) -> str:
    return f"clean-{file_index:04d}-{row_start:010d}"


def scan_file(job: CleanJob, f: InputFile) -> dict:
    """Row ranges, duplicate keys and score histograms of one input file (a planning task)."""
    recipe = job.recipe
    ranges = plan_ranges(f, recipe.rows_per_unit)
    steps = [s for source, s in recipe.top_fraction_steps() if source == f.source]
    histograms = {s.name: ScoreHistogram() for s in steps}
    hashes: dict[str, list] = {kind: [] for kind in DUPLICATE_KINDS}
    # ids made up from positions (no uid column; img2dataset's per-folder keys) are no identity to compare
    ids_are_identities = "uid" in f.columns and not SCHEMAS[f.schema].positional_ids
    orders = []
    for batch in read_range(f):
        readable = batch.filter(pc.is_null(batch["read_error"]))
        orders.append(order_keys(f.file_index, readable["row"].to_numpy()))
        hashes["url"].extend(hash_values(readable["url"].to_pylist()))
        uids = readable["uid"].to_pylist() if ids_are_identities else [None] * readable.num_rows
        hashes["uid"].extend(hash_values([None if u is None else f"{f.source}\x00{u}" for u in uids]))
        for step in steps:
            if step.ranks_by in readable.column_names:
                histograms[step.name].add(readable, column=step.ranks_by)
    all_orders = np.concatenate(orders) if orders else np.empty(0, dtype=np.int64)
    for kind in job.dedup_kinds():
        write_keys(key_path(job.plan_dir, kind, f.file_index), hashes[kind], all_orders)
    return {"file_index": f.file_index, "ranges": [dataclasses.asdict(r) for r in ranges], "histograms": histograms}


def clean_fingerprint(recipe: CleanRecipe, files: list[InputFile]) -> dict[str, str]:
    """What decides the result: the recipe (minus operational knobs), which file feeds which source, and
    each input file's size and modification stamp (`fingerprint.plan_fingerprint`)."""
    decisive = recipe.model_dump(mode="json", exclude={**dict.fromkeys(SESSION_KEYS, True), "download": {
        "thread_count", "timeout", "retries"}})
    options = {"recipe": decisive, "--input": [[f.source, f.path] for f in files]}
    return plan_fingerprint(options, [p for f in files for p in (f.path, f.companion) if p is not None])


def _top_fraction_thresholds(recipe: CleanRecipe, histograms: Mapping[str, ScoreHistogram]
                             ) -> dict[str, dict[str, float]]:
    """Score each source's top fraction starts at; a source without scores keeps nothing (inf)."""
    thresholds: dict[str, dict[str, float]] = defaultdict(dict)
    for source, step in recipe.top_fraction_steps():
        hist = histograms.get(step.name)
        has_scores = hist is not None and source in hist.counts and hist.counts[source].sum() > 0
        thresholds[step.name][source] = hist.threshold(source, step.top_fraction) if has_scores else math.inf
    return thresholds


def _plan_from_scratch(recipe: CleanRecipe, out_dir: Path, files: list[InputFile], fingerprint: dict) -> dict:
    plan_dir = out_dir / PLAN_DIR
    shutil.rmtree(plan_dir, ignore_errors=True)
    job = CleanJob(recipe=recipe, out_dir=str(out_dir))
    ranges: dict[int, list[dict]] = {}
    histograms: dict[str, ScoreHistogram] = {}

    def collect(result: dict) -> None:
        ranges[result["file_index"]] = result["ranges"]
        for name, hist in result["histograms"].items():
            histograms[name] = histograms[name].merge(hist) if name in histograms else hist

    run_tasks(scan_file, [(job, f) for f in files], collect)
    bits = partition_bits(sum(r["row_count"] for rs in ranges.values() for r in rs), recipe.dedup.partition_rows)
    indices = [f.file_index for f in files]
    run_tasks(find_duplicates, [args for kind in job.dedup_kinds() for args in partition_jobs(plan_dir, kind,
                                                                                                indices, bits)])
    plan = {
        "fingerprint": fingerprint,
        "files": [dataclasses.asdict(f) for f in files],
        "units": [{"file_index": i, **r} for i in sorted(ranges) for r in ranges[i]],
        "thresholds": _top_fraction_thresholds(recipe, histograms),
        "partition_bits": bits,
    }
    write_json(plan_dir / "plan.json", plan)
    shutil.rmtree(plan_dir / "keys", ignore_errors=True)
    return plan


def make_plan(recipe: CleanRecipe, out_dir: Path, files: list[InputFile], fingerprint: dict[str, str]
              ) -> tuple[CleanJob, list[Unit[CleanWork]]]:
    """Reuse `_plan/plan.json` if it matches this fingerprint (`clean_fingerprint`), else plan from scratch."""
    plan_dir = out_dir / PLAN_DIR
    plan_file = plan_dir / "plan.json"
    if plan_file.exists():
        plan = json.loads(plan_file.read_text())
        if plan["fingerprint"] != fingerprint:
            raise RecipeError(f"--out {out_dir}: holds a run of other inputs or another recipe; "
                              f"use a new output directory")
        shutil.rmtree(plan_dir / "keys", ignore_errors=True)  # left if a run died right after planning
    else:
        if committed_units(out_dir):
            raise RecipeError(f"--out {out_dir}: holds committed units but no plan; use a new output directory")
        plan = _plan_from_scratch(recipe, out_dir, files, fingerprint)
    saved = {f["file_index"]: InputFile(**{**f, "names": tuple(f["names"])}) for f in plan["files"]}
    job = CleanJob(recipe=recipe, out_dir=str(out_dir), thresholds=plan["thresholds"],
                   partition_bits=plan["partition_bits"])
    units = [Unit(unit_id(u["file_index"], u["row_start"]),
                  CleanWork(job, saved[u["file_index"]], RowRange(u["row_start"], u["row_count"], u["byte_start"])))
             for u in plan["units"]]
    return job, units
