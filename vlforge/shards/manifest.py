"""Manifests: one parquet row for every input sample of a work unit, kept or dropped.

A unit's manifest is written last, after its tars, so its presence is the commit mark.
Manifests live in `__manifests/` beside the tars: Ray Data skips paths that start with `_` and
Hugging Face datasets those that start with `__`, so both read a shard directory as its tars alone.
"""

import json
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vlforge.shards.atomic import commit, temp_path

MANIFEST_DIR = "__manifests"
MANIFEST_SUFFIX = ".manifest.parquet"
CORE_COLUMNS = ("uid", "source", "status", "reason", "stage", "tar", "key")
KEPT, DROPPED = "kept", "dropped"


def manifest_path(out_dir: Path, prefix: str) -> Path:
    return Path(out_dir) / MANIFEST_DIR / f"{prefix}{MANIFEST_SUFFIX}"


def _column(values: list) -> pa.Array:
    """Infer a column type; values Arrow cannot unify (int and str, nested mixes) become JSON text."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        return pa.array(
            [None if v is None else json.dumps(v, ensure_ascii=False, default=str) for v in values],
            type=pa.string(),
        )


def rows_to_table(rows: Sequence[dict]) -> pa.Table:
    """Column-wise build: core columns as strings first, then extras in first-seen order."""
    names = list(CORE_COLUMNS)
    for row in rows:
        names.extend(k for k in row if k not in names)
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        if name in CORE_COLUMNS:
            columns[name] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        else:
            columns[name] = _column(values)
    return pa.table(columns)


def write_manifest(out_dir: Path, prefix: str, rows: Sequence[dict], tars: Sequence[Path] = ()) -> Path:
    """The unit's commit mark; refused if one of its `tars` is gone by the time it would land."""
    final = manifest_path(out_dir, prefix)
    final.parent.mkdir(exist_ok=True)
    tmp = temp_path(final)
    pq.write_table(rows_to_table(rows), tmp)
    commit(tmp, final, requires=tars)
    return final


def list_manifests(out_dir: Path) -> list[Path]:
    return sorted((Path(out_dir) / MANIFEST_DIR).glob(f"*{MANIFEST_SUFFIX}"))


def read_manifests(out_dir: Path) -> pa.Table:
    """All committed manifests of a directory as one table (columns unified by name)."""
    tables = [pq.read_table(p) for p in list_manifests(out_dir)]
    if not tables:
        return rows_to_table([])
    return pa.concat_tables(tables, promote_options="permissive")
