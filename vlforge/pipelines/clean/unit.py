"""Phase 2 of `vlforge clean`: one work unit, read to committed shards (one Ray task, via executor.run_units).

A unit reads its rows, drops read errors and the duplicates the plan found, runs the recipe's
`before_download` steps, fetches images (img2dataset behind the address guard, or the tar of an
img2dataset shard) into the unit's spill file on disk, then runs the `after_download` steps and writes
`KEY.<ext>`, `KEY.txt`, `KEY.json` chunk by chunk, so no more than CHUNK_BYTES of images are in memory,
plus a manifest row for every one of its input rows. The shard writer commits it (tars first, manifest last).

The manifest's `sha256` is the hash of the bytes stored in the tar; a dump's own `sha256` that does not
match the fetched bytes is kept as `sha256_dump`.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from collections.abc import Iterator

import pyarrow as pa

from vlforge.filters.base import Filter, run_filters, set_column, split_rows
from vlforge.filters.registry import private_columns, sample_columns, score_columns
from vlforge.pipelines.clean.keys import later_rows
from vlforge.pipelines.clean.plan import CleanJob, CleanWork
from vlforge.pipelines.clean.pools import PooledFilter
from vlforge.pipelines.clean.recipe import make_filter
from vlforge.pipelines.executor import Unit, UnitStats
from vlforge.shards.thumbs import DroppedThumbs
from vlforge.shards.writer import ShardWriter
from vlforge.sources.download import download
from vlforge.sources.dumps.readers import read_range, reader_of
from vlforge.sources.dumps.schemas import SAMPLE_SCORES, SCHEMAS, InputFile
from vlforge.sources.spill import Spill

# Columns that never go into manifests: bytes and free text live in the tar (and filters name theirs); a
# schema's private columns (img2dataset's own key/status/error_message) would shadow the manifest's.
NOT_IN_MANIFEST = frozenset({"image", "spill_offset", "spill_size", "caption", "read_error"}).union(
    private_columns(), *(schema.private_columns for schema in SCHEMAS.values()))
# A sample's JSON `scores`: what the dump brought and what filters measured.
SCORE_FIELDS = (*SAMPLE_SCORES, *score_columns())
SAMPLE_COLUMNS = sample_columns()  # what filters measured that a sample carries besides scores (lang, caption_raw)
MAX_ERROR_CHARS = 300
CHUNK_BYTES = 256 * 1024 * 1024  # spilled image bytes loaded at once for the after_download steps
CHUNK_ROWS = 1024


def build_chain(job: CleanJob, source: str, phase: str) -> list[Filter]:
    chain: list[Filter] = []
    for step in job.recipe.source_steps(source, phase):
        if step.name in job.pools:
            chain.append(PooledFilter(step.name, job.pools[step.name]))
        else:  # a top-fraction step gets the thresholds the plan computed; other steps keep their own
            chain.append(make_filter(step, job.thresholds[step.name] if step.top_fraction is not None else None))
    return chain


def fetch_images(job: CleanJob, f: InputFile, table: pa.Table, spill: Spill) -> tuple[pa.Table, pa.Table]:
    """Attach `spill_offset`/`spill_size` (the image bytes, appended to `spill`); rows without an image come
    back dropped (stage 'download')."""
    fetched = reader_of(f).fetch(f, table, spill)  # an img2dataset shard's tar, or None: download
    if fetched is None:
        fetched = download(table["url"].to_pylist(), job.recipe.download, spill)
    reasons = [r.reason or (None if r.stored else "image_missing") for r in fetched]
    table = table.append_column("spill_offset", pa.array([r.offset for r in fetched], pa.int64()))
    table = table.append_column("spill_size", pa.array([r.size for r in fetched], pa.int64()))
    table = table.append_column("error", pa.array([r.error[:MAX_ERROR_CHARS] if r.error else None
                                                   for r in fetched], pa.string()))
    return split_rows(table, reasons, "download")


def _chunks(table: pa.Table, max_bytes: int) -> Iterator[pa.Table]:
    """Consecutive slices of at most CHUNK_ROWS rows and `max_bytes` of spilled images (at least one row)."""
    start, total = 0, 0
    for i, size in enumerate(table["spill_size"].to_pylist()):
        if i > start and (total + size > max_bytes or i - start == CHUNK_ROWS):
            yield table.slice(start, i - start)
            start, total = i, 0
        total += size
    if start < table.num_rows:
        yield table.slice(start)


def _load_images(chunk: pa.Table, spill: Spill) -> pa.Table:
    """The chunk with its `image` bytes; `sha256` of those bytes, and `sha256_dump` where the dump claimed another."""
    images = [spill.read(offset, size) for offset, size in zip(chunk["spill_offset"].to_pylist(),
                                                                chunk["spill_size"].to_pylist(), strict=True)]
    hashes = [hashlib.sha256(data).hexdigest() for data in images]
    claimed = chunk["sha256"].to_pylist() if "sha256" in chunk.column_names else [None] * len(images)
    mismatch = [c if c and c.strip().lower() != h else None for c, h in zip(claimed, hashes, strict=True)]
    chunk = set_column(chunk, "image", pa.array(images, pa.binary()))
    chunk = set_column(chunk, "sha256", pa.array(hashes, pa.string()))
    return set_column(chunk, "sha256_dump", pa.array(mismatch, pa.string()))


def process_unit(unit: Unit[CleanWork]) -> UnitStats:
    """Read, filter, fetch, filter, write one unit; commits through the shard writer (manifest last)."""
    job, f, rng = unit.payload.job, unit.payload.file, unit.payload.range
    table = pa.concat_tables(list(read_range(f, rng)), promote_options="permissive")
    dropped: list[pa.Table] = []

    table, bad = split_rows(table, table["read_error"].to_pylist(), "read")
    dropped.append(bad)
    later = {kind: later_rows(job.plan_dir, kind, job.partition_bits, f.file_index, rng.row_start,
                              rng.row_start + rng.row_count) for kind in job.dedup_kinds()}
    reasons = [next((f"duplicate_{kind}" for kind, rows in later.items() if row in rows), None)
               for row in table["row"].to_pylist()]
    table, dups = split_rows(table, reasons, "dedup")
    dropped.append(dups)

    table, out = run_filters(table, build_chain(job, f.source, "before_download"))
    dropped.append(out)
    with tempfile.TemporaryDirectory(prefix="vlforge-spill-") as folder, Spill(folder) as spill:
        table, out = fetch_images(job, f, table, spill)
        dropped.append(out)
        return write_unit(job, unit.id, table, spill, dropped, build_chain(job, f.source, "after_download"))


def _manifest_row(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in NOT_IN_MANIFEST}


def _sample_json(record: dict) -> dict:
    return {
        "uid": record["uid"], "source": record["source"], "url": record["url"],
        "width": record.get("width"), "height": record.get("height"),
        "scores": {k: record[k] for k in SCORE_FIELDS if record.get(k) is not None},
        "sha256": record.get("sha256"), **{k: record.get(k) for k in SAMPLE_COLUMNS},
    }


def _records(table: pa.Table) -> list[dict]:
    return table.drop_columns([c for c in ("image",) if c in table.column_names]).to_pylist()


def write_unit(job: CleanJob, prefix: str, fetched: pa.Table, spill: Spill, dropped: list[pa.Table],
               after: list[Filter], chunk_bytes: int = CHUNK_BYTES) -> UnitStats:
    """The `after` steps over the fetched rows, one chunk at a time, and every row written in input row order:
    kept samples into the unit's shards, dropped ones as manifest rows. `sha256` is hashed from the stored bytes."""
    early = sorted((r for part in dropped for r in _records(part)), key=lambda r: r["row"])
    reasons: Counter = Counter()
    kept_count, written, pending = 0, 0, 0
    spec = job.recipe.shards
    thumbs = DroppedThumbs()
    with ShardWriter(job.out_dir, prefix, spec.max_samples, spec.max_bytes) as writer:
        def emit(rows: list[tuple[dict, bool]]) -> None:
            for record, is_kept in sorted(rows, key=lambda item: item[0]["row"]):
                if is_kept:
                    if record.get("image_reencoded"):  # else `sha256` is already the hash of these very bytes
                        record["sha256"] = hashlib.sha256(record["image"]).hexdigest()
                    key = f"{record['file_index']:04d}_{record['row']:010d}"
                    files = {record["image_ext"]: record["image"], "txt": record["caption"],
                             "json": _sample_json(record)}
                    writer.write(key, files, _manifest_row(record))
                else:
                    writer.drop(_manifest_row(record), reason=record["reason"], stage=record["stage"])
                    reasons[record["reason"]] += 1

        for chunk in _chunks(fetched, chunk_bytes):
            kept, out = run_filters(_load_images(chunk, spill), after)
            thumbs.offer(out)  # a few dropped images per reason, for `vlforge report`
            rows = [(r, True) for r in kept.to_pylist()] + [(r, False) for r in _records(out)]
            last = chunk["row"][-1].as_py()
            while pending < len(early) and early[pending]["row"] <= last:
                rows.append((early[pending], False))
                pending += 1
            emit(rows)
            kept_count += kept.num_rows
            written += len(rows)
        emit([(r, False) for r in early[pending:]])
        written += len(early) - pending
        thumbs.write(job.out_dir, prefix)  # before the writer commits the manifest
    return UnitStats(prefix, read=written, kept=kept_count, dropped=written - kept_count, reasons=dict(reasons))
