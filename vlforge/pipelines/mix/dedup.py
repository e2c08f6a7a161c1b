"""Dropping cross-source duplicates (`drop_duplicates: sha256 | phash`; default `none`: reported only).

A sample is dropped (`duplicate_image`) when one of its images is also the image of a planned sample of a
source listed EARLIER in the recipe: identical bytes (sha256), or with `phash` identical bytes or an
identical 64-bit perceptual hash. Samples of one source never drop each other (VQAv2 asks many questions
about one image), and the earliest-listed source keeps all of its samples, so the recipe's order says
which source wins.

Deciding needs every planned image's hash before any unit renders, so the mix runs a hashing pass first:
one Ray task per unit writes `_mixplan/hashes/mix-NNNNN.parquet` (skipped when present, so a resumed run
hashes only what it had not); DuckDB then finds the later duplicates (spilling to disk, under a memory
limit) and they are streamed into two sorted arrays the units memory-map (`duplicates-key.bin`: source
index << 40 | record index; `duplicates-first.bin`: the earlier source).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vlforge.pipelines.mix.images import hashes
from vlforge.pipelines.mix.plan import MixWork
from vlforge.pipelines.mix.spill import Sources
from vlforge.shards.atomic import commit, temp_path
from vlforge.sources.images import ImageDrop, TarReader, read_bytes

HASH_DIR = "hashes"
KEY_FILE, FIRST_FILE = "duplicates-key.bin", "duplicates-first.bin"
DUCKDB_MEMORY = "512MB"
INDEX_BITS = 40  # record indices below 2**40 (a trillion records per source)


def sample_key(source: int, index: int) -> int:
    return (source << INDEX_BITS) | index


def hash_unit(unit_id: str, work: MixWork, mode: str) -> str:
    """Hash every image of one unit's planned samples into the plan folder; returns the file written."""
    folder = Path(work.plan_dir) / HASH_DIR
    final = folder / f"{unit_id}.parquet"
    if final.exists():
        return str(final)
    entries = work.entries()
    rows: dict[str, list] = {"source": [], "index": [], "sha256": [], "phash": []}
    tars, sources, seen = TarReader(), Sources(Path(work.plan_dir)), set()
    try:
        for _, source, index in entries:
            if (source, index) in seen:
                continue
            seen.add((source, index))
            for ref in sources.item(source, index).images:
                try:
                    sha, perceptual = hashes(read_bytes(ref, tars), mode == "phash")
                except ImageDrop:
                    continue  # the unit drops the sample for its own reason
                for column, value in zip(rows, (source, index, sha, perceptual), strict=True):
                    rows[column].append(value)
    finally:
        tars.close()
        sources.close()
    folder.mkdir(exist_ok=True)
    tmp = temp_path(final)
    schema = pa.schema([("source", pa.int32()), ("index", pa.int64()), ("sha256", pa.string()),
                        ("phash", pa.string())])
    pq.write_table(pa.Table.from_pydict(rows, schema=schema), tmp)
    commit(tmp, final)
    return str(final)


def find_duplicates(plan_dir: Path, mode: str) -> int:
    """Write the sorted keys of the samples to drop (and the earlier source of each); returns their number."""
    import duckdb

    final_keys, final_first = plan_dir / KEY_FILE, plan_dir / FIRST_FILE
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY}'")
    con.execute(f"SET temp_directory = '{plan_dir / 'duckdb-tmp'}'")
    pattern = str(plan_dir / HASH_DIR / "*.parquet")
    phash = "UNION ALL SELECT source, index, 'p' || phash FROM h WHERE phash IS NOT NULL" if mode == "phash" else ""
    con.execute(f"""
        CREATE VIEW h AS SELECT * FROM read_parquet('{pattern}');
        CREATE VIEW k AS SELECT source, index, 's' || sha256 AS hash FROM h {phash};""")
    result = con.execute(f"""
        WITH first AS (SELECT hash, min(source) AS first FROM k GROUP BY hash)
        SELECT (k.source::BIGINT << {INDEX_BITS}) | k.index AS key, min(first.first) AS first
        FROM k JOIN first USING (hash) WHERE k.source > first.first
        GROUP BY key ORDER BY key""")
    keys_tmp, first_tmp = temp_path(final_keys), temp_path(final_first)
    found = 0
    with open(keys_tmp, "wb") as keys_file, open(first_tmp, "wb") as first_file:
        while batch := result.fetchmany(65536):
            found += len(batch)
            np.array([b[0] for b in batch], dtype="<i8").tofile(keys_file)
            np.array([b[1] for b in batch], dtype="<i4").tofile(first_file)
    commit(keys_tmp, final_keys)
    commit(first_tmp, final_first)
    return found


class Duplicates:
    """The later duplicates of a plan folder, memory-mapped: the earlier source of a sample, or None."""

    def __init__(self, plan_dir: Path) -> None:
        self._keys = _mapped(Path(plan_dir) / KEY_FILE, "<i8")
        self._first = _mapped(Path(plan_dir) / FIRST_FILE, "<i4")

    def earlier_source(self, source: int, index: int) -> int | None:
        key = sample_key(source, index)
        at = int(np.searchsorted(self._keys, key))
        return int(self._first[at]) if at < len(self._keys) and self._keys[at] == key else None


def _mapped(path: Path, dtype: str) -> np.ndarray:
    return np.memmap(path, dtype=dtype, mode="r") if path.stat().st_size else np.empty(0, dtype=dtype)
