"""Exact-duplicate filter on one column (uid, url or image sha256): the first occurrence in input order wins.

State lives in the filter instance, so duplicates are found across all batches it sees, in the order it
sees them: give one instance the batches of a work unit in order and "first" is deterministic.
Memory: a sorted numpy array of 64-bit xxh3 hashes, 8 bytes per distinct value (16 while merging a
batch in; 10M values ~ 80 MB). A false duplicate needs a 64-bit collision: probability ~ n^2 / 2^65
(1e-6 at n = 6M).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from vlforge.filters.base import Filter, FilterResult


def hash_values(values: list[object]) -> list[int | None]:
    """64-bit xxh3 hash of each value's bytes (str as UTF-8, others via str()); None and empty give None."""
    digest = xxhash.xxh3_64_intdigest
    return [None if value is None or value == "" or value == b""
            else digest(value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass"))
            for value in values]


def hash_column(column: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(uint64 hashes, missing mask) of an Arrow column; the hashes equal `hash_values` of its values.

    Hashes of missing (null or empty) values are 0.
    """
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    kind = column.type
    if pa.types.is_string(kind):
        column = column.cast(pa.binary())  # same layout: no copy
    elif pa.types.is_large_string(kind):
        column = column.cast(pa.large_binary())
    elif not (pa.types.is_binary(kind) or pa.types.is_large_binary(kind)):
        column = pc.cast(pc.cast(column, pa.string()), pa.binary())
    missing = pc.fill_null(pc.binary_length(column), 0).to_numpy(zero_copy_only=False) == 0
    hashes = np.zeros(len(column), dtype=np.uint64)
    present = column.filter(pa.array(~missing)).to_pylist()
    hashes[~missing] = np.fromiter(map(xxhash.xxh3_64_intdigest, present), np.uint64, count=len(present))
    return hashes, missing


class DuplicateFilter(Filter):
    """Drop rows whose `column` value was already seen (reason `duplicate_<column>`).

    Null or empty values cannot be compared: they are dropped as `<column>_missing`, or kept with
    `missing="keep"` (e.g. sha256 before download).
    """

    def __init__(self, column: str, *, missing: str = "drop", name: str | None = None) -> None:
        if missing not in ("drop", "keep"):
            raise ValueError(f"missing must be 'drop' or 'keep', got {missing!r}")
        self.column = column
        self.missing = missing
        self.name = name or f"dedup_{column}"
        self.seen = np.zeros(0, dtype=np.uint64)  # sorted

    def apply(self, batch: pa.Table) -> FilterResult:
        n = batch.num_rows
        if self.column in batch.column_names:
            hashes, missing = hash_column(batch[self.column])
        else:
            hashes, missing = np.zeros(n, dtype=np.uint64), np.ones(n, dtype=bool)
        reasons = np.full(n, None, dtype=object)
        if self.missing == "drop":
            reasons[missing] = f"{self.column}_missing"
        rows = np.flatnonzero(~missing)
        distinct, first = np.unique(hashes[rows], return_index=True)
        duplicate = np.ones(len(rows), dtype=bool)
        duplicate[first] = False  # the first occurrence within this batch...
        position = np.minimum(np.searchsorted(self.seen, distinct), max(len(self.seen) - 1, 0))
        known = self.seen[position] == distinct if len(self.seen) else np.zeros(len(distinct), dtype=bool)
        duplicate[first[known]] = True  # ...unless an earlier batch had it
        reasons[rows[duplicate]] = f"duplicate_{self.column}"
        merged = np.concatenate([self.seen, distinct[~known]])
        merged.sort(kind="stable")  # two sorted runs: a linear merge
        self.seen = merged
        return FilterResult.from_reasons(batch, reasons)
