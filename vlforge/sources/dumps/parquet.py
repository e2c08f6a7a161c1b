"""Parquet dumps, read by row groups: a work unit opens only the row groups that overlap its rows."""

from __future__ import annotations

from collections.abc import Iterator

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vlforge.sources.dumps.base import Reader
from vlforge.sources.dumps.canonical import from_arrow
from vlforge.sources.dumps.schemas import ColumnOverrides, InputError, InputFile, RowRange


class ParquetReader(Reader):
    format = "parquet"
    extensions = (".parquet",)
    caption_optional = False

    def header(self, path: str, overrides: ColumnOverrides) -> tuple[str, ...]:
        try:
            with fsspec.open(path, "rb") as f:
                return tuple(pq.ParquetFile(f).schema_arrow.names)
        except pa.ArrowException as exc:  # empty, truncated, or not parquet at all
            raise InputError(f"{path}: not a readable parquet file ({exc})") from None

    def check(self, path: str, columns: dict[str, str]) -> None:
        """A nested column (list, struct, map) cannot be read as a URL or caption: refused before any work."""
        with fsspec.open(path, "rb") as f:
            schema = pq.ParquetFile(f).schema_arrow
        for canonical, column in columns.items():
            kind = schema.field(column).type
            if pa.types.is_nested(kind):
                raise InputError(f"{path}: column {column!r} (field {canonical}) is {kind}, "
                                 f"not a text or number column")

    def ranges(self, f: InputFile, rows_per_unit: int) -> list[RowRange]:
        with fsspec.open(f.path, "rb") as handle:
            total = pq.ParquetFile(handle).metadata.num_rows
        return [RowRange(s, min(rows_per_unit, total - s)) for s in range(0, total, rows_per_unit)]

    def batches(self, f: InputFile, rng: RowRange | None, batch_size: int) -> Iterator[pa.Table]:
        columns = sorted(set(f.columns.values()))
        for table, rows in _parquet_batches(f, rng, columns, batch_size):
            yield from_arrow(table, f, rows, caption_optional=self.caption_optional)


def _parquet_batches(f: InputFile, rng: RowRange | None, columns: list[str] | None,
                     batch_size: int) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Raw batches of the rows in `rng` with their row numbers; corrupt data is an InputError naming the rows."""
    try:
        yield from _parquet_row_groups(f, rng, columns, batch_size)
    except (pa.ArrowException, OSError) as exc:
        where = "" if rng is None else f" rows {rng.row_start}..{rng.row_start + rng.row_count - 1}"
        raise InputError(f"{f.path}:{where} unreadable parquet data ({exc})") from None


def _parquet_row_groups(f: InputFile, rng: RowRange | None, columns: list[str] | None,
                        batch_size: int) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Raw batches of the rows in `rng` with their row numbers, reading only the row groups that overlap it."""
    with fsspec.open(f.path, "rb") as handle:
        pf = pq.ParquetFile(handle)
        start = 0 if rng is None else rng.row_start
        stop = pf.metadata.num_rows if rng is None else rng.row_start + rng.row_count
        groups, first_row, offset = [], None, 0
        for g in range(pf.num_row_groups):
            size = pf.metadata.row_group(g).num_rows
            if offset < stop and offset + size > start:
                groups.append(g)
                first_row = offset if first_row is None else first_row
            offset += size
        if not groups:
            return
        row = first_row
        for batch in pf.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns):
            lo, hi = max(start - row, 0), min(stop - row, batch.num_rows)
            if hi > lo:
                yield pa.Table.from_batches([batch.slice(lo, hi - lo)]), np.arange(row + lo, row + hi)
            row += batch.num_rows
            if row >= stop:
                return
