"""Phase 2 of `vlforge clean`: one work unit, read to committed shards (one Ray task, via runner.run_units).

A unit reads its rows, drops read errors and the duplicates the plan found, runs the recipe's
`before_download` steps, fetches images (img2dataset behind the address guard, or the tar of an
img2dataset shard), runs the `after_download` steps and writes `KEY.<ext>`, `KEY.txt`, `KEY.json` plus a
manifest row for every one of its input rows. The shard writer commits it (tars first, manifest last).
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from vlforge.filters.base import Filter, run_filters
from vlforge.pipelines.clean_keys import later_rows
from vlforge.pipelines.clean_plan import CleanJob
from vlforge.pipelines.clean_ray import PooledFilter
from vlforge.pipelines.clean_recipe import CleanRecipe, make_filter
from vlforge.pipelines.download import DownloadOptions, Fetched, download, reason_from_error
from vlforge.pipelines.netguard import AddressPolicy
from vlforge.pipelines.readers import InputFile, RowRange, read_range, read_shard_images
from vlforge.pipelines.runner import Unit
from vlforge.shards.writer import ShardWriter

# Columns that never go into manifests: bytes and free text live in the tar.
# An img2dataset shard's own key/status/error_message would shadow the manifest's columns of those names.
NOT_IN_MANIFEST = frozenset({"image", "caption", "caption_raw", "read_error", "key", "status", "error_message"})
SCORE_FIELDS = ("clip_score", "clip_l14_score", "clip_score_computed", "clip_model", "punsafe", "pwatermark",
                "nsfw", "nsfw_score", "watermark_score", "aesthetic_score")
MAX_ERROR_CHARS = 300


def download_options(recipe: CleanRecipe) -> DownloadOptions:
    """The recipe's `download:` section split into img2dataset's options and the address guard's."""
    spec = recipe.download.model_dump()
    policy = AddressPolicy(**{key: spec.pop(key) for key in (
        "allow_loopback", "max_redirects", "max_bytes", "max_seconds", "max_unit_seconds")})
    spec["disallowed_header_directives"] = tuple(spec["disallowed_header_directives"])
    return DownloadOptions(**spec, policy=policy)


def build_chain(job: CleanJob, source: str, phase: str) -> list[Filter]:
    chain: list[Filter] = []
    for step in job.recipe.source_steps(source, phase):
        if step.name in job.pools:
            chain.append(PooledFilter(step.name, job.pools[step.name]))
        else:  # a top-fraction step gets the thresholds the plan computed; other steps keep their own
            chain.append(make_filter(step, job.thresholds[step.name] if step.top_fraction is not None else None))
    return chain


def _split(table: pa.Table, reasons: list[str | None], stage: str) -> tuple[pa.Table, pa.Table]:
    """(rows without a reason, rows with one, tagged with reason and stage)."""
    drop = np.fromiter((r is not None for r in reasons), dtype=bool, count=len(reasons))
    dropped = table.filter(pa.array(drop))
    dropped = dropped.append_column("reason", pa.array([r for r in reasons if r is not None], pa.string()))
    dropped = dropped.append_column("stage", pa.array([stage] * dropped.num_rows, pa.string()))
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
        fetched = download(table["url"].to_pylist(), download_options(job.recipe))
    reasons = [r.reason or (None if r.image is not None else "image_missing") for r in fetched]
    table = table.append_column("image", pa.array([r.image for r in fetched], pa.binary()))
    table = table.append_column("error", pa.array([r.error[:MAX_ERROR_CHARS] if r.error else None
                                                   for r in fetched], pa.string()))
    if "sha256" not in table.column_names:
        table = table.append_column("sha256", pa.array([r.sha256 for r in fetched], pa.string()))
    return _split(table, reasons, "download")


def process_unit(unit: Unit) -> dict:
    """Read, filter, fetch, filter, write one unit; commits through the shard writer (manifest last)."""
    job: CleanJob = unit.payload["job"]
    f = job.files[unit.payload["file_index"]]
    rng: RowRange = unit.payload["range"]
    table = pa.concat_tables(list(read_range(f, rng)), promote_options="permissive")
    dropped: list[pa.Table] = []

    table, bad = _split(table, table["read_error"].to_pylist(), "read")
    dropped.append(bad)
    later = {kind: later_rows(job.plan_dir, kind, job.partition_bits, f.file_index, rng.row_start,
                              rng.row_start + rng.row_count) for kind in job.dedup_kinds()}
    reasons = [next((f"duplicate_{kind}" for kind, rows in later.items() if row in rows), None)
               for row in table["row"].to_pylist()]
    table, dups = _split(table, reasons, "dedup")
    dropped.append(dups)

    table, out, _ = run_filters(table, build_chain(job, f.source, "before_download"))
    dropped.append(out)
    table, out = fetch_images(job, f, table)
    dropped.append(out)
    table, out, _ = run_filters(table, build_chain(job, f.source, "after_download"))
    dropped.append(out)
    return write_unit(job, unit.id, table, dropped)


def _manifest_row(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in NOT_IN_MANIFEST}


def _sample_json(record: dict) -> dict:
    return {
        "uid": record["uid"], "source": record["source"], "url": record["url"],
        "width": record.get("width"), "height": record.get("height"), "lang": record.get("lang"),
        "scores": {k: record[k] for k in SCORE_FIELDS if record.get(k) is not None},
        "sha256": record.get("sha256"), "caption_raw": record.get("caption_raw"),
    }


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
