"""`vlforge clean`: raw image-text dumps -> cleaned WebDataset shards, a manifest row for every input row.

Three phases, each safe to kill and rerun with the same command:
1. plan (`plan.py`): work units, run-wide URL/uid duplicates, top-fraction CLIP thresholds;
2. units (`unit.py`, one Ray task each via executor.run_units): filter, download, filter, write, commit;
3. image dedup (`dedup.py`): identical bytes across units, once every unit has committed.
This module runs them in one Ray session, writes the per-source summary, and is the CLI.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from vlforge.config import ConfigError, read_yaml
from vlforge.pipelines.clean.dedup import DEDUP_DIR, dedup_images
from vlforge.pipelines.clean.plan import PLAN_DIR, CleanWork, clean_fingerprint, make_plan
from vlforge.pipelines.clean.pools import start_pools, stop_pools
from vlforge.pipelines.clean.recipe import CleanRecipe, RecipeError, load_recipe
from vlforge.pipelines.clean.unit import process_unit
from vlforge.pipelines.executor import (
    SESSION_KEYS,
    RunReport,
    Unit,
    UnitStats,
    add_session_flags,
    finish,
    give_up_rows,
    run_units,
)
from vlforge.shards.atomic import write_json
from vlforge.shards.manifest import KEPT, MANIFEST_SUFFIX, list_manifests
from vlforge.shards.outdir import Plan, claim_out_dir
from vlforge.sources.dumps.readers import list_inputs

SUMMARY = "clean-summary.json"
UNIT_PATTERN = r"clean-\d{4}-\d{10}"  # plan.unit_id


def summarize(out_dir: Path, prefixes: Iterable[str]) -> dict[str, dict]:
    """read / kept / dropped by reason, per source, from the committed manifests."""
    wanted = set(prefixes)
    table: dict[str, dict] = {}
    for path in list_manifests(out_dir):
        if path.name[: -len(MANIFEST_SUFFIX)] not in wanted:
            continue
        part = pq.read_table(path, columns=["source", "status", "reason"]).to_pylist()
        for r in part:
            entry = table.setdefault(r["source"], {"read": 0, "kept": 0, "dropped": 0, "reasons": Counter()})
            entry["read"] += 1
            if r["status"] == KEPT:
                entry["kept"] += 1
            else:
                entry["dropped"] += 1
                entry["reasons"][r["reason"]] += 1
    return {s: {**e, "reasons": dict(e["reasons"].most_common())} for s, e in sorted(table.items())}


def format_summary(summary: Mapping[str, dict]) -> str:
    """The end-of-run table: one line per source, then its drop reasons, most frequent first."""
    lines = [f"{'source':<16} {'read':>10} {'kept':>10} {'kept %':>7}  dropped by reason"]
    for source, e in summary.items():
        ratio = f"{100 * e['kept'] / e['read']:.1f}" if e["read"] else "-"
        lines.append(f"{source:<16} {e['read']:>10} {e['kept']:>10} {ratio:>7}  dropped {e['dropped']}")
        lines.extend(f"{'':<16} {'':>10} {'':>10} {'':>7}    {n:>8}  {reason}" for reason, n in e["reasons"].items())
    return "\n".join(lines)


@dataclass
class CleanReport:
    """What `clean` did: the units' report, the per-source table, and timings (Ray's from its session)."""

    run: RunReport
    summary: dict[str, dict]
    image_duplicates: int
    ray_start_s: float
    ray_stop_s: float
    elapsed_s: float


def parse_inputs(specs: list[str], recipe: CleanRecipe) -> list[tuple[str, str]]:
    """`SOURCE=PATH` pairs; a bare PATH is allowed when the recipe has one source."""
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if sep and name in recipe.sources:
            pairs.append((name, path))
        elif len(recipe.sources) == 1:
            pairs.append((next(iter(recipe.sources)), spec))
        else:
            raise RecipeError(f"--input {spec!r}: name its source as SOURCE=PATH; sources: {sorted(recipe.sources)}")
    return pairs


def clean(recipe: CleanRecipe, out_dir: str | Path, inputs: list[tuple[str, str]] | None = None,
          allow_foreign_files: bool = False) -> CleanReport:
    """Run the whole recipe; `inputs` (source, path) replace the recipe's `sources.*.inputs` when given.

    The output directory is claimed before planning (`shards.outdir`) and held until the summary is written.
    Units given up are committed, so image dedup and the summary still run; the report carries their failure.
    """
    t0 = time.perf_counter()
    out = Path(out_dir)
    pairs = inputs if inputs is not None else [(s, p) for s, spec in recipe.sources.items() for p in spec.inputs]
    if not pairs:
        raise RecipeError("--input: no input files (give --input or `inputs:` under a source)")
    files = list_inputs(pairs, {s: spec.overrides() for s, spec in recipe.sources.items()})
    plan = Plan(key="clean", pipeline="clean", units=UNIT_PATTERN, extras=(PLAN_DIR, DEDUP_DIR, SUMMARY),
                fingerprint=clean_fingerprint(recipe, files))
    read = [p for _, p in pairs] + [p for f in files for p in (f.path, f.companion) if p is not None]
    with claim_out_dir(out, plan, inputs=read, allow_foreign_files=allow_foreign_files) as claim, \
            recipe.session() as session:  # Ray boots while the driver plans
        job, units = make_plan(recipe, out, files, plan.fingerprint)
        job = dataclasses.replace(job, pools=start_pools(recipe, {f.source for f in files}))
        try:  # a failed (uncommitted) unit raises: image dedup waits for the rerun that commits it
            units = [Unit(u.id, dataclasses.replace(u.payload, job=job)) for u in units]
            report = run_units(units, process_unit, out, desc="clean", claim=claim, give_up=give_up_unit)
        finally:
            stop_pools(job.pools)
        duplicates = dedup_images(job, units) if recipe.dedup.sha256 else 0
        summary = summarize(out, [u.id for u in units])
        write_json(out / SUMMARY, summary)
    started, stopped = (session.start_s, session.stop_s) if session else (0.0, 0.0)
    return CleanReport(run=report, summary=summary, image_duplicates=duplicates, ray_start_s=started,
                       ray_stop_s=stopped, elapsed_s=time.perf_counter() - t0)


def give_up_unit(unit: Unit[CleanWork], cause: str) -> UnitStats:
    """Commit a unit whose worker kept dying: each of its rows dropped, saying why."""
    work = unit.payload
    f, rng = work.file, work.range
    rows = ({"uid": None, "source": f.source, "file_index": f.file_index, "row": row}
            for row in range(rng.row_start, rng.row_start + rng.row_count))
    return give_up_rows(unit, work.job.out_dir, rows, cause)


COLUMN_FLAGS = ("uid", "url", "caption", "width", "height")


def add_clean_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("clean", help="clean raw image-text dumps into WebDataset shards (Qwen-VL stage 1)")
    p.add_argument("--recipe", required=True, help="cleaning recipe YAML (e.g. recipes/qwenvl-stage1.yaml)")
    p.add_argument("--input", nargs="+", metavar="[SOURCE=]PATH",
                   help="input files, directories, globs or fsspec URLs (recipe: sources.<name>.inputs)")
    p.add_argument("--out", required=True, type=Path, help="output directory (shards, manifests, plan)")
    add_session_flags(p)
    p.add_argument("--rows-per-unit", type=int, help="rows per resumable work unit (recipe: rows_per_unit)")
    p.add_argument("--allow-foreign-files", action="store_true",
                   help="write into an --out that holds files vlforge did not write (they are never deleted)")
    p.add_argument("--allow-loopback", action="store_true", default=None,
                   help="let downloads reach 127.0.0.0/8 (recipe: download.allow_loopback)")
    p.add_argument("--schema", help="input schema for every source: auto|laion|datacomp|coyo|img2dataset|generic "
                                    "(recipe: sources.<name>.schema)")
    for name in COLUMN_FLAGS:
        p.add_argument(f"--{name}-col", help=f"column holding the {name} (recipe: sources.<name>.columns.{name})")
    return p


def recipe_overrides(args: argparse.Namespace, source_names: Iterable[str]) -> dict[str, Any]:
    """Dotted recipe keys for the flags that were given."""
    overrides: dict[str, Any] = {}
    for flag, key in (*((k, k) for k in sorted(SESSION_KEYS)), ("rows_per_unit", "rows_per_unit"),
                      ("allow_loopback", "download.allow_loopback")):
        if getattr(args, flag) is not None:
            overrides[key] = getattr(args, flag)
    for source in source_names:
        if args.schema is not None:
            overrides[f"sources.{source}.schema"] = args.schema
        for name in COLUMN_FLAGS:
            value = getattr(args, f"{name}_col")
            if value is not None:
                overrides[f"sources.{source}.columns.{name}"] = value
    return overrides


def _source_names(recipe_path: str) -> list[str]:
    """The recipe's source names, which the per-source flags (--schema, --url-col, ...) expand to."""
    try:
        sources = read_yaml(recipe_path).get("sources")
    except ConfigError:
        return []  # load_recipe reports the problem with the file's name
    return list(sources) if isinstance(sources, dict) else []


def run_clean(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe, recipe_overrides(args, _source_names(args.recipe)))
    inputs = parse_inputs(args.input, recipe) if args.input else None
    report = clean(recipe, args.out, inputs, allow_foreign_files=args.allow_foreign_files)
    print(format_summary(report.summary))
    print(f"image duplicates {report.image_duplicates} (after the units); ray start {report.ray_start_s:.1f}s, "
          f"stop {report.ray_stop_s:.1f}s, total {report.elapsed_s:.1f}s", file=sys.stderr)
    finish(report.run, args.out)
    return 0
