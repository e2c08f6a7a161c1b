"""`vlforge clean`: raw image-text dumps -> cleaned WebDataset shards, a manifest row for every input row.

The run has three phases, each safe to kill and rerun:

1. **Plan** (Ray tasks, one per input file). Split every file into row ranges (the work units, ids
   `clean-{file:04d}-{row:010d}`), hash each readable row's URL and (source, uid) to 64 bits, and
   fill per-source score histograms for top-fraction CLIP thresholds. Exact duplicates are then found
   per hash partition (`dedup.partition_rows` hashes in memory at a time, spread over disk otherwise):
   the first occurrence in input order (file order, then row order) is kept, later ones are listed.
   `_plan/plan.json` is written last; without it the plan is redone from scratch.
2. **Units** (`runner.run_units`, one Ray task per unit, committed by the shard writer). A unit reads
   its rows, drops read errors and planned duplicates, runs the recipe's `before_download` steps,
   fetches images (img2dataset behind the address guard, or the tar of an img2dataset shard), runs
   the `after_download` steps and writes `KEY.<ext>`, `KEY.txt`, `KEY.json` plus its manifest.
   Steps with `actors: N` run in a pool of N Ray actors (the CLIP scorer, `num_gpus` each).
3. **Image dedup** (after all units). Identical image bytes (sha256) from different units can only be
   judged once every unit is done: the kept rows' hashes are deduplicated the same way, and each unit
   holding a later copy gets its tar rewritten without it and its manifest row turned into
   `duplicate_sha256` (tar first, manifest last, both atomic). A rerun recomputes the duplicates from
   the manifests; first copies are never touched, so the result is the same however often it runs.

Known trade-off: URL/uid duplicates are decided before filtering, so when the first copy of a URL is
later dropped (say, for its caption) the other copies are dropped as duplicates all the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
import sys
import tarfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlforge.filters.base import Filter, FilterResult, run_filters
from vlforge.filters.clip_score import ScoreHistogram
from vlforge.filters.dedup import hash_values
from vlforge.pipelines.clean_recipe import PARAMS, CleanRecipe, RecipeError, Step, load_recipe, make_filter
from vlforge.pipelines.download import DownloadOptions, Fetched, download, reason_from_error
from vlforge.pipelines.netguard import AddressPolicy
from vlforge.pipelines.readers import InputFile, RowRange, list_inputs, plan_ranges, read_range, read_shard_images
from vlforge.pipelines.runner import RunReport, Unit, run_units
from vlforge.shards.atomic import commit, temp_path
from vlforge.shards.manifest import KEPT, MANIFEST_SUFFIX, list_manifests, manifest_path, write_manifest
from vlforge.shards.units import committed_units
from vlforge.shards.writer import ShardWriter

ROW_BITS = 40  # order key = file_index << 40 | row: 2^40 rows per file, 2^23 files
KEY_DTYPE = np.dtype([("hash", "<u8"), ("order", "<i8")])
PLAN_DIR, DEDUP_DIR, SUMMARY = "_plan", "_dedup", "clean-summary.json"
DUPLICATE_KINDS = ("uid", "url")  # checked in this order: the same sample twice is reported as such
# Columns that never go into manifests: bytes and free text live in the tar.
# An img2dataset shard's own key/status/error_message would shadow the manifest's columns of those names.
NOT_IN_MANIFEST = frozenset({"image", "caption", "caption_raw", "read_error", "key", "status", "error_message"})
SCORE_FIELDS = ("clip_score", "clip_l14_score", "clip_score_computed", "clip_model", "punsafe", "pwatermark",
                "nsfw", "nsfw_score", "watermark_score", "aesthetic_score")
MAX_ERROR_CHARS = 300


# ---------------------------------------------------------------- the job every task receives


@dataclass(frozen=True)
class CleanJob:
    """Everything a planning or unit task needs; pickled into each task."""

    recipe: CleanRecipe
    out_dir: str
    files: tuple[InputFile, ...]
    thresholds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # top-fraction step -> source
    partition_bits: int = 0
    pools: Mapping[str, list] = field(default_factory=dict)  # actor step name -> actor handles

    @property
    def plan_dir(self) -> Path:
        return Path(self.out_dir) / PLAN_DIR

    def download_options(self) -> DownloadOptions:
        spec = self.recipe.download.model_dump()
        policy = AddressPolicy(allow_loopback=spec.pop("allow_loopback"), max_redirects=spec.pop("max_redirects"),
                               max_bytes=spec.pop("max_bytes"))
        spec["disallowed_header_directives"] = tuple(spec["disallowed_header_directives"])
        return DownloadOptions(**spec, policy=policy)


def unit_id(file_index: int, row_start: int) -> str:
    return f"clean-{file_index:04d}-{row_start:010d}"


def order_keys(file_index: int, rows: np.ndarray) -> np.ndarray:
    return (np.int64(file_index) << ROW_BITS) | rows.astype(np.int64)


# ---------------------------------------------------------------- exact dedup by hash partitions


def write_keys(path: Path, hashes: Iterable[int | None], orders: np.ndarray) -> None:
    """Save (hash, order) pairs sorted by hash (stable: equal hashes stay in input order); None hashes skipped."""
    values = list(hashes)
    present = np.fromiter((h is not None for h in values), dtype=bool, count=len(values))
    keys = np.empty(int(present.sum()), dtype=KEY_DTYPE)
    keys["hash"] = np.fromiter((h for h in values if h is not None), dtype=np.uint64, count=len(keys))
    keys["order"] = orders[present]
    keys = keys[np.argsort(keys["hash"], kind="stable")]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        np.save(f, keys)
    commit(tmp, path)


def _partition_bounds(partition: int, bits: int) -> tuple[int, int | None]:
    if bits == 0:
        return 0, None
    shift = 64 - bits
    high = None if partition == (1 << bits) - 1 else (partition + 1) << shift
    return partition << shift, high


def find_duplicates(key_files: list[Path], partition: int, bits: int, out: Path) -> int:
    """Orders of the later copies of every hash in one partition, saved sorted; returns how many.

    `key_files` must be in input order; within each, equal hashes are in row order (see write_keys).
    """
    low, high = _partition_bounds(partition, bits)
    parts = []
    for path in key_files:
        if not path.exists():
            continue
        keys = np.load(path, mmap_mode="r")
        lo = int(np.searchsorted(keys["hash"], np.uint64(low)))
        hi = len(keys) if high is None else int(np.searchsorted(keys["hash"], np.uint64(high)))
        parts.append(np.array(keys[lo:hi]))
    keys = np.concatenate(parts) if parts else np.empty(0, dtype=KEY_DTYPE)
    keys = keys[np.argsort(keys["hash"], kind="stable")]
    later = np.zeros(len(keys), dtype=bool)
    later[1:] = keys["hash"][1:] == keys["hash"][:-1]
    duplicates = np.sort(keys["order"][later])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out)
    with open(tmp, "wb") as f:
        np.save(f, duplicates)
    commit(tmp, out)
    return len(duplicates)


def duplicates_in_range(dup_files: Iterable[Path], low: int, high: int) -> set[int]:
    """Order keys in [low, high) listed in any of the partition files."""
    found: set[int] = set()
    for path in dup_files:
        dups = np.load(path, mmap_mode="r")
        found.update(dups[np.searchsorted(dups, low):np.searchsorted(dups, high)].tolist())
    return found


def partition_bits(total: int, partition_rows: int) -> int:
    return 0 if total <= partition_rows else math.ceil(math.log2(total / partition_rows))


# ---------------------------------------------------------------- Ray helpers


def _run_tasks(fn: Callable, items: list, on_result: Callable[[Any], None] = lambda _: None) -> None:
    """Run fn(item) for every item as Ray tasks, handing each result to `on_result` as it arrives."""
    import ray

    task = ray.remote(num_cpus=1)(fn)
    pending = [task.remote(item) for item in items]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        on_result(ray.get(ready[0]))


class FilterActor:
    """Holds one operator (a CLIP model, say) so it loads once and serves every unit's batches."""

    def __init__(self, step: Step, thresholds: Mapping[str, float] | None) -> None:
        self.filter = make_filter(step, thresholds)

    def apply(self, batch: pa.Table) -> FilterResult:
        return self.filter.apply(batch)


class PooledFilter(Filter):
    """A step whose work happens in a pool of `FilterActor`s; units call it like any other filter."""

    def __init__(self, name: str, handles: list) -> None:
        self.name, self.handles = name, handles

    def apply(self, batch: pa.Table) -> FilterResult:
        import ray

        first_row = batch["row"][0].as_py() if batch.num_rows else 0
        return ray.get(self.handles[first_row % len(self.handles)].apply.remote(batch))


def actor_thresholds(recipe: CleanRecipe, step: Step) -> dict[str, float] | None:
    """One thresholds mapping for a pooled step, so a single pool serves every source."""
    if "thresholds" not in PARAMS[step.op].model_fields:
        return None
    base = step.params.get("thresholds", PARAMS[step.op].model_fields["thresholds"].default)
    mapping = dict(base) if isinstance(base, Mapping) else {source: float(base) for source in recipe.sources}
    for source, spec in recipe.sources.items():
        if "thresholds" in spec.filters.get(step.name, {}):
            mapping[source] = float(spec.filters[step.name]["thresholds"])
    return mapping


def start_pools(recipe: CleanRecipe, sources: set[str]) -> dict[str, list]:
    """An actor pool for each pooled step that some source of this run enables."""
    import ray

    pools = {}
    for step in recipe.steps():
        used = any(s.name == step.name for source in sources for phase in ("before_download", "after_download")
                   for s in recipe.source_steps(source, phase))
        if step.actors and used:
            actor = ray.remote(num_cpus=1, num_gpus=step.num_gpus)(FilterActor)
            pools[step.name] = [actor.remote(step, actor_thresholds(recipe, step)) for _ in range(step.actors)]
    return pools


def stop_pools(pools: Mapping[str, list]) -> None:
    import ray

    for handles in pools.values():
        for handle in handles:
            ray.kill(handle)


# ---------------------------------------------------------------- phase 1: plan


def _key_path(plan_dir: Path, kind: str, file_index: int) -> Path:
    return plan_dir / "keys" / f"{kind}-{file_index:05d}.npy"


def _dup_files(root: Path, kind: str, bits: int) -> list[Path]:
    return [root / "dups" / f"{kind}-{p:05d}.npy" for p in range(1 << bits)]


def scan_file(args: tuple[CleanJob, InputFile]) -> dict:
    """Row ranges, duplicate keys and score histograms of one input file (a planning task)."""
    job, f = args
    recipe = job.recipe
    ranges = plan_ranges(f, recipe.rows_per_unit)
    steps = [s for source, s in recipe.top_fraction_steps() if source == f.source]
    histograms = {s.name: ScoreHistogram() for s in steps}
    hashes: dict[str, list] = {kind: [] for kind in DUPLICATE_KINDS}
    # ids made up from positions (no uid column; img2dataset's per-folder keys) are no identity to compare
    ids_are_identities = "uid" in f.columns and f.schema != "img2dataset"
    orders = []
    for batch in read_range(f):
        readable = batch.filter(pc.is_null(batch["read_error"]))
        orders.append(order_keys(f.file_index, readable["row"].to_numpy()))
        hashes["url"].extend(hash_values(readable["url"].to_pylist()))
        uids = readable["uid"].to_pylist() if ids_are_identities else [None] * readable.num_rows
        hashes["uid"].extend(hash_values([None if u is None else f"{f.source}\x00{u}" for u in uids]))
        for step in steps:
            column = step.params.get("column", "clip_score")
            if column in readable.column_names:
                histograms[step.name].add(readable, column=column)
    all_orders = np.concatenate(orders) if orders else np.empty(0, dtype=np.int64)
    for kind in DUPLICATE_KINDS:
        if getattr(recipe.dedup, kind):
            write_keys(_key_path(job.plan_dir, kind, f.file_index), hashes[kind], all_orders)
    return {"file_index": f.file_index, "ranges": [dataclasses.asdict(r) for r in ranges],
            "histograms": histograms}


def _dedup_partition(args: tuple[list[Path], int, int, Path]) -> int:
    return find_duplicates(*args)


def _fingerprint(recipe: CleanRecipe, files: list[InputFile]) -> str:
    """What decides the result: the recipe (minus operational knobs) and the input files with their sizes."""
    import fsspec

    decisive = recipe.model_dump(mode="json", exclude={"num_cpus": True, "ray_address": True, "download": {
        "thread_count", "timeout", "retries"}})
    sizes = []
    for f in files:
        fs, path = fsspec.core.url_to_fs(f.path)
        sizes.append([f.source, f.path, fs.size(path)])
    return hashlib.sha256(json.dumps([decisive, sizes], sort_keys=True).encode()).hexdigest()


def _file_from_json(data: dict) -> InputFile:
    return InputFile(**{**data, "names": tuple(data["names"])})


def make_plan(recipe: CleanRecipe, out_dir: Path, files: list[InputFile]) -> tuple[CleanJob, list[Unit]]:
    """Reuse `_plan/plan.json` if it matches this recipe and these inputs, else plan from scratch."""
    plan_dir = out_dir / PLAN_DIR
    plan_file = plan_dir / "plan.json"
    fingerprint = _fingerprint(recipe, files)
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
    job = CleanJob(recipe=recipe, out_dir=str(out_dir), files=tuple(_file_from_json(f) for f in plan["files"]),
                   thresholds=plan["thresholds"], partition_bits=plan["partition_bits"])
    units = [Unit(unit_id(u["file_index"], u["row_start"]),
                  {"job": job, "file_index": u["file_index"],
                   "range": RowRange(u["row_start"], u["row_count"], u["byte_start"])})
             for u in plan["units"]]
    return job, units


def _plan_from_scratch(recipe: CleanRecipe, out_dir: Path, files: list[InputFile], fingerprint: str) -> dict:
    plan_dir = out_dir / PLAN_DIR
    shutil.rmtree(plan_dir, ignore_errors=True)
    job = CleanJob(recipe=recipe, out_dir=str(out_dir), files=tuple(files))
    ranges: dict[int, list[dict]] = {}
    histograms: dict[str, ScoreHistogram] = {}

    def collect(result: dict) -> None:
        ranges[result["file_index"]] = result["ranges"]
        for name, hist in result["histograms"].items():
            histograms[name] = histograms[name].merge(hist) if name in histograms else hist

    _run_tasks(scan_file, [(job, f) for f in files], collect)
    total = sum(r["row_count"] for rs in ranges.values() for r in rs)
    bits = partition_bits(total, recipe.dedup.partition_rows)
    tasks = [([_key_path(plan_dir, kind, f.file_index) for f in files], p, bits, dup)
             for kind in DUPLICATE_KINDS if getattr(recipe.dedup, kind)
             for p, dup in enumerate(_dup_files(plan_dir, kind, bits))]
    _run_tasks(_dedup_partition, tasks)
    thresholds: dict[str, dict[str, float]] = defaultdict(dict)
    for source, step in recipe.top_fraction_steps():
        hist = histograms.get(step.name)
        has_scores = hist is not None and source in hist.counts and hist.counts[source].sum() > 0
        thresholds[step.name][source] = hist.threshold(source, step.top_fraction) if has_scores else math.inf
    plan = {
        "fingerprint": fingerprint,
        "files": [dataclasses.asdict(f) for f in files],
        "units": [{"file_index": i, **r} for i in sorted(ranges) for r in ranges[i]],
        "thresholds": thresholds,
        "partition_bits": bits,
    }
    tmp = temp_path(plan_dir / "plan.json")
    tmp.write_text(json.dumps(plan, indent=1))
    commit(tmp, plan_dir / "plan.json")
    shutil.rmtree(plan_dir / "keys", ignore_errors=True)
    return plan


# ---------------------------------------------------------------- phase 2: one unit


def build_chain(job: CleanJob, source: str, phase: str) -> list[Filter]:
    chain: list[Filter] = []
    for step in job.recipe.source_steps(source, phase):
        if step.name in job.pools:
            chain.append(PooledFilter(step.name, job.pools[step.name]))
        else:  # a top-fraction step gets the thresholds the plan computed; other steps keep their own
            chain.append(make_filter(step, job.thresholds[step.name] if step.top_fraction is not None else None))
    return chain


def _with_reason(table: pa.Table, reasons: list[str], stage: str) -> pa.Table:
    table = table.append_column("reason", pa.array(reasons, pa.string()))
    return table.append_column("stage", pa.array([stage] * table.num_rows, pa.string()))


def _split(table: pa.Table, reasons: list[str | None], stage: str) -> tuple[pa.Table, pa.Table]:
    """(rows without a reason, rows with one, tagged with reason and stage)."""
    drop = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
    dropped = _with_reason(table.filter(pa.array(drop)), [r for r in reasons if r is not None], stage)
    return table.filter(pa.array(~drop)), dropped


def _from_shard(f: InputFile, table: pa.Table) -> list[Fetched]:
    """What img2dataset fetched for these rows: the image from its tar, or its recorded error."""
    keys = table["key"].to_pylist()
    statuses = table["status"].to_pylist()
    errors = table["error_message"].to_pylist() if "error_message" in table.column_names else [None] * len(keys)
    images = read_shard_images(f.tar, [k for k, s in zip(keys, statuses, strict=True) if s == "success"])
    return [Fetched(image=images.get(k)) if s == "success" else Fetched(reason=reason_from_error(e), error=e)
            for k, s, e in zip(keys, statuses, errors, strict=True)]


def fetch_images(job: CleanJob, f: InputFile, table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Attach `image` bytes; rows whose image could not be fetched come back dropped (stage 'download')."""
    if f.format == "img2dataset":
        fetched = _from_shard(f, table)
    else:
        fetched = download(table["url"].to_pylist(), job.download_options())
    reasons = [r.reason or (None if r.image is not None else "image_missing") for r in fetched]
    table = table.append_column("image", pa.array([r.image for r in fetched], pa.binary()))
    table = table.append_column("error", pa.array([r.error[:MAX_ERROR_CHARS] if r.error else None
                                                   for r in fetched], pa.string()))
    if "sha256" not in table.column_names:
        table = table.append_column("sha256", pa.array([r.sha256 for r in fetched], pa.string()))
    return _split(table, reasons, "download")


def _manifest_row(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in NOT_IN_MANIFEST}


def _sample_json(record: dict) -> dict:
    return {
        "uid": record["uid"], "source": record["source"], "url": record["url"],
        "width": record.get("width"), "height": record.get("height"), "lang": record.get("lang"),
        "scores": {k: record[k] for k in SCORE_FIELDS if record.get(k) is not None},
        "sha256": record.get("sha256"), "caption_raw": record.get("caption_raw"),
    }


def process_unit(unit: Unit) -> dict:
    """Read, filter, fetch, filter, write one unit; commits through the shard writer (manifest last)."""
    job: CleanJob = unit.payload["job"]
    f = job.files[unit.payload["file_index"]]
    rng: RowRange = unit.payload["range"]
    table = pa.concat_tables(list(read_range(f, rng)), promote_options="permissive")
    dropped: list[pa.Table] = []

    table, bad = _split(table, table["read_error"].to_pylist(), "read")
    dropped.append(bad)
    low = int(order_keys(f.file_index, np.array([rng.row_start]))[0])
    seen_later = {kind: duplicates_in_range(_dup_files(job.plan_dir, kind, job.partition_bits),
                                            low, low + rng.row_count)
                  for kind in DUPLICATE_KINDS if getattr(job.recipe.dedup, kind)}
    orders = order_keys(f.file_index, table["row"].to_numpy()).tolist()
    reasons = [next((f"duplicate_{kind}" for kind, later in seen_later.items() if o in later), None)
               for o in orders]
    table, dups = _split(table, reasons, "dedup")
    dropped.append(dups)

    table, out, _ = run_filters(table, build_chain(job, f.source, "before_download"))
    dropped.append(out)
    table, out = fetch_images(job, f, table)
    dropped.append(out)
    table, out, _ = run_filters(table, build_chain(job, f.source, "after_download"))
    dropped.append(out)
    return write_unit(job, unit.id, table, dropped)


def write_unit(job: CleanJob, prefix: str, kept: pa.Table, dropped: list[pa.Table]) -> dict:
    """Kept samples and dropped rows, in input row order, into the unit's shards and manifest."""
    rows: list[tuple[dict, bool]] = [(r, True) for r in kept.to_pylist()]
    for part in dropped:
        rows.extend((r, False) for r in part.drop_columns([c for c in ("image",) if c in part.column_names])
                    .to_pylist())
    rows.sort(key=lambda item: item[0]["row"])
    reasons: Counter = Counter()
    spec = job.recipe.shards
    with ShardWriter(job.out_dir, prefix, spec.max_samples, spec.max_bytes) as writer:
        for record, is_kept in rows:
            if is_kept:
                key = f"{record['file_index']:04d}_{record['row']:010d}"
                files = {record["image_ext"]: record["image"], "txt": record["caption"], "json": _sample_json(record)}
                writer.write(key, files, _manifest_row(record))
            else:
                writer.drop(_manifest_row(record), reason=record["reason"], stage=record["stage"])
                reasons[record["reason"]] += 1
    kept_count = kept.num_rows
    return {"unit": prefix, "read": len(rows), "kept": kept_count, "dropped": len(rows) - kept_count,
            "reasons": dict(reasons)}


# ---------------------------------------------------------------- phase 3: image dedup across units


def _unit_file_index(prefix: str) -> int:
    return int(prefix.split("-")[1])


def sha256_keys(args: tuple[str, int, list[str]]) -> None:
    """Key file of the kept images of one input file's units (a post-pass task)."""
    out_dir, file_index, prefixes = args
    hashes, orders = [], []
    for prefix in prefixes:
        path = manifest_path(Path(out_dir), prefix)
        if "sha256" not in pq.read_schema(path).names:
            continue  # nothing of this unit reached download
        table = pq.read_table(path, columns=["status", "sha256", "row"])
        table = table.filter(pc.equal(table["status"], KEPT))
        hashes.extend(hash_values(table["sha256"].to_pylist()))
        orders.append(order_keys(file_index, table["row"].to_numpy()))
    all_orders = np.concatenate(orders) if orders else np.empty(0, dtype=np.int64)
    write_keys(_key_path(Path(out_dir) / DEDUP_DIR, "sha256", file_index), hashes, all_orders)


def _rewrite_tar(path: Path, drop_keys: set[str]) -> None:
    """The tar without the members of `drop_keys`, replaced atomically; removed if nothing is left."""
    if not path.exists():
        return
    tmp = temp_path(path)
    kept = 0
    with tarfile.open(path, "r:") as src, tarfile.open(tmp, "w") as dst:
        for member in src:
            if member.name.rpartition("/")[2].partition(".")[0] in drop_keys:
                continue
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
            kept += 1
    if kept:
        commit(tmp, path)
    else:
        tmp.unlink()
        path.unlink()


def drop_image_duplicates(args: tuple[str, str, int]) -> int:
    """Turn a unit's later image copies into dropped rows: tars rewritten first, manifest last."""
    out_dir, prefix, bits = args
    out = Path(out_dir)
    file_index = _unit_file_index(prefix)
    path = manifest_path(out, prefix)
    rows = pq.read_table(path).to_pylist()
    first, last = min(r["row"] for r in rows), max(r["row"] for r in rows)
    low, high = order_keys(file_index, np.array([first, last + 1])).tolist()
    later = {order - low + first for order in duplicates_in_range(_dup_files(out / DEDUP_DIR, "sha256", bits),
                                                                  low, high)}
    hit = [r for r in rows if r["status"] == KEPT and r["row"] in later]
    if not hit:
        return 0
    by_tar: dict[str, set[str]] = defaultdict(set)
    for r in hit:
        by_tar[r["tar"]].add(r["key"])
    for tar, keys in sorted(by_tar.items()):
        _rewrite_tar(out / tar, keys)
    for r in hit:
        r.update(status="dropped", reason="duplicate_sha256", stage="dedup_sha256", tar=None, key=None)
    write_manifest(out, prefix, rows)
    return len(hit)


def dedup_images(job: CleanJob, prefixes: list[str]) -> int:
    """Phase 3 over all committed units of this run; returns how many rows it turned into duplicates."""
    root = Path(job.out_dir) / DEDUP_DIR
    shutil.rmtree(root, ignore_errors=True)
    by_file: dict[int, list[str]] = defaultdict(list)
    for prefix in sorted(prefixes):
        by_file[_unit_file_index(prefix)].append(prefix)
    _run_tasks(sha256_keys, [(job.out_dir, i, p) for i, p in sorted(by_file.items())])
    key_files = [_key_path(root, "sha256", i) for i in sorted(by_file)]
    bits = job.partition_bits
    found = []
    _run_tasks(_dedup_partition, [(key_files, p, bits, d) for p, d in enumerate(_dup_files(root, "sha256", bits))],
               found.append)
    if not sum(found):
        shutil.rmtree(root, ignore_errors=True)
        return 0
    changed: list[int] = []
    _run_tasks(drop_image_duplicates, [(job.out_dir, p, bits) for p in sorted(prefixes)], changed.append)
    shutil.rmtree(root, ignore_errors=True)
    return sum(changed)


# ---------------------------------------------------------------- summary


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
    lines = [f"{'source':<16} {'read':>10} {'kept':>10} {'kept %':>7}  dropped by reason"]
    for source, e in summary.items():
        ratio = f"{100 * e['kept'] / e['read']:.1f}" if e["read"] else "-"
        lines.append(f"{source:<16} {e['read']:>10} {e['kept']:>10} {ratio:>7}  dropped {e['dropped']}")
        lines.extend(f"{'':<16} {'':>10} {'':>10} {'':>7}    {n:>8}  {reason}" for reason, n in e["reasons"].items())
    return "\n".join(lines)


# ---------------------------------------------------------------- entry points


@dataclass
class CleanReport:
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


def clean(recipe: CleanRecipe, out_dir: str | Path, inputs: list[tuple[str, str]] | None = None) -> CleanReport:
    """Run the whole recipe; `inputs` (source, path) replace the recipe's `sources.*.inputs` when given."""
    from vlforge.pipelines.runner import ray_session

    t0 = time.perf_counter()
    out = Path(out_dir)
    pairs = inputs if inputs is not None else [(s, p) for s, spec in recipe.sources.items() for p in spec.inputs]
    if not pairs:
        raise RecipeError("--input: no input files (give --input or `inputs:` under a source)")
    files = list_inputs(pairs, {s: spec.overrides() for s, spec in recipe.sources.items()})
    out.mkdir(parents=True, exist_ok=True)
    with ray_session(recipe.ray_address, recipe.num_cpus) as (started, stopped):
        job, units = make_plan(recipe, out, files)
        job = dataclasses.replace(job, pools=start_pools(recipe, {f.source for f in files}))
        try:
            units = [Unit(u.id, {**u.payload, "job": job}) for u in units]
            report = run_units(units, process_unit, out, ray_address=recipe.ray_address, desc="clean")
        finally:
            stop_pools(job.pools)
        prefixes = [u.id for u in units]
        duplicates = dedup_images(job, prefixes) if recipe.dedup.sha256 else 0
    summary = summarize(out, prefixes)
    tmp = temp_path(out / SUMMARY)
    tmp.write_text(json.dumps(summary, indent=1))
    commit(tmp, out / SUMMARY)
    return CleanReport(run=report, summary=summary, image_duplicates=duplicates, ray_start_s=started,
                       ray_stop_s=stopped[0] if stopped else 0.0, elapsed_s=time.perf_counter() - t0)


COLUMN_FLAGS = ("uid", "url", "caption", "width", "height")


def add_clean_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("clean", help="clean raw image-text dumps into WebDataset shards (Qwen-VL stage 1)")
    p.add_argument("--recipe", required=True, help="cleaning recipe YAML (e.g. recipes/qwenvl-stage1.yaml)")
    p.add_argument("--input", nargs="+", metavar="[SOURCE=]PATH",
                   help="input files, directories, globs or fsspec URLs (recipe: sources.<name>.inputs)")
    p.add_argument("--out", required=True, type=Path, help="output directory (shards, manifests, plan)")
    p.add_argument("--ray-address", help="join a Ray cluster (auto|HOST:PORT); recipe: ray_address")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (recipe: num_cpus)")
    p.add_argument("--rows-per-unit", type=int, help="rows per resumable work unit (recipe: rows_per_unit)")
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
    for flag, key in (("ray_address", "ray_address"), ("num_cpus", "num_cpus"), ("rows_per_unit", "rows_per_unit"),
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
    import yaml

    try:
        data = yaml.safe_load(Path(recipe_path).read_text(encoding="utf-8"))
        return list(data.get("sources") or {}) if isinstance(data, dict) else []
    except (OSError, yaml.YAMLError):
        return []  # load_recipe reports the problem with the file's name


def run_clean(args: argparse.Namespace) -> int:
    recipe = load_recipe(args.recipe, recipe_overrides(args, _source_names(args.recipe)))
    inputs = parse_inputs(args.input, recipe) if args.input else None
    report = clean(recipe, args.out, inputs)
    print(format_summary(report.summary))
    run = report.run
    print(f"units run {len(run.stats)}, skipped (already committed) {len(run.skipped)}, debris removed "
          f"{len(run.removed)}, image duplicates {report.image_duplicates}; ray start {report.ray_start_s:.1f}s, "
          f"stop {report.ray_stop_s:.1f}s, total {report.elapsed_s:.1f}s  ->  {args.out}", file=sys.stderr)
    return 0
