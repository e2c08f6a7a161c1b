"""`vlforge mix`: plan (read every source, fail before any work), claim the output, run units on Ray, report.

Work unit = a stretch of `samples_per_unit` positions of the planned order (`mix-{k:05d}`), written into
its own tars and manifest and committed atomically; a killed run started again with the same command
finishes the missing units only. The plan fingerprint (recipe, every source's records, the input files'
size and mtime, the evaluation hashes) is recorded with the output, so a rerun whose recipe or inputs
changed is refused with the fields that changed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from vlforge.pipelines.fingerprint import plan_fingerprint
from vlforge.pipelines.mix_images import eval_hashes
from vlforge.pipelines.mix_plan import Plan, make_plan, scan_sources
from vlforge.pipelines.mix_recipe import MixRecipe
from vlforge.pipelines.mix_report import summarize
from vlforge.pipelines.mix_unit import process_unit
from vlforge.pipelines.runner import RunReport, Unit, run_units
from vlforge.shards.atomic import commit, temp_path
from vlforge.shards.outdir import Plan as OutPlan
from vlforge.shards.outdir import claim_out_dir
from vlforge.sources.annotations import ShardMember

MIX_FILE = "mix.json"
UNIT_PATTERN = r"mix-\d{5}"


@dataclass
class MixResult:
    report: RunReport
    summary: dict


def _digest(items: list) -> str:
    h = hashlib.sha256()
    for item in items:
        h.update(json.dumps(asdict(item), sort_keys=True, default=str).encode())
    return h.hexdigest()


def _input_files(recipe: MixRecipe, plan: Plan) -> list[str]:
    """Annotation files and tars the sources read (image files are covered by the records' digest only)."""
    files = set()
    for source in recipe.sources:
        for value in source.source.model_dump().values():
            for path in value if isinstance(value, list) else [value]:
                if isinstance(path, (str, Path)) and Path(path).is_file():
                    files.add(str(Path(path).resolve()))
    for items in plan.items.values():
        files.update(ref.tar for item in items for ref in item.images if isinstance(ref, ShardMember))
    return sorted(files)


def make_units(recipe: MixRecipe, plan: Plan, out: Path, evals: tuple[set, set]) -> list[Unit]:
    sources = [{"name": s.name, "task": s.task, "lang": s.lang} for s in recipe.sources]
    images = {"max_side": recipe.images.max_side, "quality": recipe.images.quality, "phash": recipe.phash,
              "eval_sha256": evals[0], "eval_phash": evals[1]}
    common = {"out": str(out), "sources": sources, "images": images, "max_samples": recipe.shards.max_samples,
              "max_bytes": recipe.shards.max_bytes}
    size = recipe.samples_per_unit
    units = []
    for k, start in enumerate(range(0, len(plan.order), size)):
        entries = [(start + n, i, plan.items[recipe.sources[i].name][j])
                   for n, (i, j) in enumerate(plan.order[start:start + size])]
        units.append(Unit(f"mix-{k:05d}", {**common, "entries": entries}))
    return units


def fingerprint(recipe: MixRecipe, plan: Plan, evals: tuple[set, set], inputs: list[str]) -> dict[str, str]:
    options = {
        "recipe": recipe.model_dump(mode="json", exclude={"ray_address", "num_cpus", "exclude_eval"}),
        "records": {name: _digest(items) for name, items in plan.items.items()},
        "exclude_eval": hashlib.sha256(json.dumps([sorted(evals[0]), sorted(evals[1])]).encode()).hexdigest(),
    }
    return plan_fingerprint(options, inputs)


def write_json(path: Path, data: dict) -> None:
    tmp = temp_path(path)
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    commit(tmp, path)


def build_mixture(recipe: MixRecipe, out: str | Path, allow_foreign_files: bool = False) -> MixResult:
    """Plan, then run; every source problem is a MixError raised before the output directory is touched."""
    out = Path(out)
    plan = make_plan(recipe, scan_sources(recipe))
    evals = eval_hashes(recipe.exclude_eval, recipe.phash)
    inputs = _input_files(recipe, plan)
    units = make_units(recipe, plan, out, evals)
    out_plan = OutPlan(key="mix", pipeline="mix", units=UNIT_PATTERN, extras=(MIX_FILE,),
                       fingerprint=fingerprint(recipe, plan, evals, inputs))
    with claim_out_dir(out, out_plan, inputs=inputs + [str(p) for p in recipe.exclude_eval],
                       allow_foreign_files=allow_foreign_files) as claim:
        report = run_units(units, process_unit, out, ray_address=recipe.ray_address, num_cpus=recipe.num_cpus,
                           desc="mix", claim=claim)
        summary = summarize(out, plan.targets, {s.name: s.task for s in recipe.sources})
        write_json(out / MIX_FILE, {"name": recipe.name, "seed": recipe.seed, "samples": len(plan.order),
                                    "units": len(units), **summary,
                                    "recipe": recipe.model_dump(mode="json")})
    return MixResult(report, summary)
