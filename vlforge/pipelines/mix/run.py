"""`vlforge mix --recipe MIX.yaml --out DIR`: plan (read every source, fail before any work), claim the output,
run units on Ray, report. This module is the driver and the command line.

Planning streams every source into a staging folder beside the output (`.OUT.mixplan-*`, removed at
the end), so a missing or malformed source fails before the output directory is touched; once the output
is claimed the staging folder becomes `OUT/_mixplan` (kept when a resumed run planned the same). Work unit
= a stretch of `samples_per_unit` positions of the planned order (`mix-{k:05d}`), written into its own tars
and manifest and committed atomically; a killed run started again with the same command finishes the
missing units only. The plan fingerprint (recipe, a digest of every source's records, the input files'
size and mtime, the evaluation hashes) is recorded with the output, so a rerun whose recipe or inputs
changed is refused with the fields that changed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vlforge.pipelines.executor import SESSION_KEYS, RunReport, Unit, add_session_flags, finish, run_tasks, run_units
from vlforge.pipelines.fingerprint import plan_fingerprint
from vlforge.pipelines.mix.dedup import find_duplicates, hash_unit
from vlforge.pipelines.mix.images import eval_hashes
from vlforge.pipelines.mix.plan import ImageOptions, MixWork, Plan, UnitSource, make_plan, scan_sources
from vlforge.pipelines.mix.recipe import MixRecipe, load_mix_recipe
from vlforge.pipelines.mix.report import format_summary, summarize
from vlforge.pipelines.mix.spill import Spilled
from vlforge.pipelines.mix.unit import give_up_unit, process_unit
from vlforge.shards.atomic import write_json
from vlforge.shards.outdir import Plan as OutPlan
from vlforge.shards.outdir import check_not_input, claim_out_dir

MIX_FILE = "mix.json"
PLAN_DIR = "_mixplan"
PLAN_FILE = "plan.json"  # written last into the plan folder: its fingerprint says which plan it holds
UNIT_PATTERN = r"mix-\d{5}"


@dataclass
class MixResult:
    report: RunReport
    summary: dict


def _declared_paths(recipe: MixRecipe) -> list[Path]:
    """Every file or folder the recipe's sources name (annotation files, image roots, shard folders)."""
    found = []
    for source in recipe.sources:
        for value in source.source.model_dump().values():
            found += [Path(v) for v in (value if isinstance(value, list) else [value])
                      if isinstance(v, (str, Path)) and Path(v).exists()]
    return found


def _input_files(recipe: MixRecipe, spilled: list[Spilled]) -> list[str]:
    """Annotation files and tars the sources read (image files are covered by the records' digest only)."""
    files = {str(p.resolve()) for p in _declared_paths(recipe) if p.is_file()}
    for found in spilled:
        files.update(found.tars)
    return sorted(files)


def make_units(recipe: MixRecipe, plan: Plan, out: Path, plan_dir: Path) -> list[Unit[MixWork]]:
    """One small payload per unit: its counts and stream offsets, never records or hash sets."""
    sources = tuple(UnitSource(s.name, s.task, s.lang,
                               None if recipe.allow_outside_paths else tuple(str(r) for r in s.source.image_roots()))
                    for s in recipe.sources)
    images = ImageOptions(recipe.images.max_side, recipe.images.quality, recipe.phash)
    starts = plan.starts()
    return [Unit(f"mix-{k:05d}", MixWork(
        out=str(out), plan_dir=str(plan_dir), sources=sources, images=images, max_samples=recipe.shards.max_samples,
        max_bytes=recipe.shards.max_bytes, seed=plan.seed, have=plan.have, exclude_eval=bool(recipe.exclude_eval),
        drop_duplicates=recipe.drop_duplicates, unit=k, start=k * plan.unit_size, counts=counts.tolist(),
        starts=starts[k].tolist())) for k, counts in enumerate(plan.counts)]


def fingerprint(recipe: MixRecipe, spilled: list[Spilled], evals: str, inputs: list[str]) -> dict[str, str]:
    options = {
        "recipe": recipe.model_dump(mode="json", exclude={*SESSION_KEYS, "exclude_eval"}),
        "records": {s.name: found.digest for s, found in zip(recipe.sources, spilled, strict=True)},
        "exclude_eval": evals,
    }
    return plan_fingerprint(options, inputs)


def install_plan(staging: Path, out: Path, fingerprint: dict[str, str]) -> Path:
    """`out/_mixplan`: kept if it holds this very plan (a resumed run), else replaced by the staging folder."""
    plan_dir = out / PLAN_DIR
    plan_file = plan_dir / PLAN_FILE
    if plan_file.is_file() and json.loads(plan_file.read_text(encoding="utf-8")) == fingerprint:
        return plan_dir
    if plan_dir.exists():
        shutil.rmtree(plan_dir)  # vlforge's own (a plan extra), of a plan no unit was committed from
    shutil.move(staging, plan_dir)
    write_json(plan_file, fingerprint)
    return plan_dir


def build_mixture(recipe: MixRecipe, out: str | Path, allow_foreign_files: bool = False) -> MixResult:
    """Plan, then run; every source problem is a MixError raised before the output directory is touched."""
    out = Path(out)
    check_not_input(out, [*_declared_paths(recipe), *recipe.exclude_eval])  # before staging writes beside it
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.mixplan-", dir=out.parent))
    try:
        spilled = scan_sources(recipe, staging)
        plan = make_plan(recipe, spilled)
        evals = eval_hashes(recipe.exclude_eval, recipe.phash, staging)
        inputs = _input_files(recipe, spilled)
        out_plan = OutPlan(key="mix", pipeline="mix", units=UNIT_PATTERN, extras=(MIX_FILE, PLAN_DIR),
                           fingerprint=fingerprint(recipe, spilled, evals, inputs))
        with claim_out_dir(out, out_plan, inputs=inputs + [str(p) for p in recipe.exclude_eval],
                           allow_foreign_files=allow_foreign_files) as claim:
            plan_dir = install_plan(staging, out, dict(out_plan.fingerprint))
            units = make_units(recipe, plan, out, plan_dir)
            with recipe.session():
                if recipe.drop_duplicates != "none":
                    run_tasks(hash_unit, [(u.id, u.payload, recipe.drop_duplicates) for u in units])
                    find_duplicates(plan_dir, recipe.drop_duplicates)
                report = run_units(units, process_unit, out, desc="mix", claim=claim, give_up=give_up_unit)
            summary = summarize(out, plan.targets, {s.name: s.task for s in recipe.sources})
            write_json(out / MIX_FILE, {"name": recipe.name, "seed": recipe.seed, "samples": plan.total,
                                        "units": len(units), **summary, "recipe": recipe.model_dump(mode="json")})
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return MixResult(report, summary)


def add_mix_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("mix", help="mix annotated sources into stage-2 multi-task shards")
    p.add_argument("--recipe", required=True, help="mix recipe YAML (see recipes/mix-stage2.yaml)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, help="recipe key seed")
    p.add_argument("--total", type=int, help="recipe key total: samples in the mix")
    p.add_argument("--exclude-eval", nargs="+", type=Path, metavar="DIR",
                   help="recipe key exclude_eval: drop samples whose image is in these evaluation sets")
    p.add_argument("--drop-duplicates", choices=("none", "sha256", "phash"),
                   help="recipe key drop_duplicates: drop samples whose image a source listed earlier also has "
                        "(default none: duplicates are only reported)")
    p.add_argument("--allow-outside-paths", action="store_const", const=True,
                   help="recipe key allow_outside_paths: read image files outside their source's image folders "
                        "(default: such a sample is dropped, reason image_outside_root)")
    p.add_argument("--allow-foreign-files", action="store_true",
                   help="write into an --out that holds files vlforge did not write (they are never deleted)")
    add_session_flags(p)
    return p


def run_mix(args: argparse.Namespace) -> int:
    overrides = {"seed": args.seed, "total": args.total, "exclude_eval": args.exclude_eval,
                 "drop_duplicates": args.drop_duplicates,
                 "allow_outside_paths": args.allow_outside_paths, **{key: getattr(args, key) for key in SESSION_KEYS}}
    recipe = load_mix_recipe(args.recipe, overrides)
    result = build_mixture(recipe, args.out, allow_foreign_files=args.allow_foreign_files)
    print(format_summary(result.summary))
    finish(result.report, args.out)
    print(f"realised mix: {args.out / MIX_FILE}")
    return 0
