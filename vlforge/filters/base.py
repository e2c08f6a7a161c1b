"""The filter contract: an operator measures a batch, says which rows to keep and why the rest go.

Every operator takes an Arrow batch and returns the same rows with its measured columns added, a keep
mask and a short, stable reason per dropped row. `run_filters` chains operators on the survivors and
splits the batch into kept and dropped tables, so every input row lands in exactly one manifest row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass
class FilterResult:
    """What one operator says about a batch."""

    batch: pa.Table  # input rows, same order, with the measured columns added
    keep: np.ndarray  # bool mask, len == batch.num_rows
    reasons: list[str | None]  # per row; None where kept

    def __post_init__(self) -> None:
        n = self.batch.num_rows
        if len(self.keep) != n or len(self.reasons) != n:
            raise ValueError(f"FilterResult: keep ({len(self.keep)}) and reasons ({len(self.reasons)}) "
                             f"must have one entry per row ({n})")

    @classmethod
    def from_reasons(cls, batch: pa.Table, reasons: np.ndarray | list[str | None]) -> FilterResult:
        """Build a result from per-row reasons alone: a row is kept exactly when its reason is None."""
        array = reasons if isinstance(reasons, np.ndarray) else _object_array(reasons)
        keep = np.asarray(array == None, dtype=bool)  # noqa: E711 (elementwise on an object array)
        return cls(batch, keep, array.tolist())


class Filter(ABC):
    """One cleaning operator. `name` is the stage recorded in the manifest column `stage`."""

    name: str

    @abstractmethod
    def apply(self, batch: pa.Table) -> FilterResult:
        """Measure `batch` and decide per row. Must accept an empty batch (schema stays stable)."""


@dataclass
class StageCounts:
    """Rows seen, kept and dropped by one stage, with the drop count per reason."""

    read: int = 0
    kept: int = 0
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def merge(self, other: StageCounts) -> StageCounts:
        reasons = dict(self.reasons)
        for reason, count in other.reasons.items():
            reasons[reason] = reasons.get(reason, 0) + count
        return StageCounts(self.read + other.read, self.kept + other.kept, self.dropped + other.dropped,
                           reasons)


@dataclass
class FilterStats:
    """Counts of a filter chain over batches; `merge` adds two of them (batches, units, workers)."""

    read: int = 0
    kept: int = 0
    dropped: int = 0
    stages: dict[str, StageCounts] = field(default_factory=dict)

    def merge(self, other: FilterStats) -> FilterStats:
        stages = dict(self.stages)
        for name, counts in other.stages.items():
            stages[name] = stages[name].merge(counts) if name in stages else counts
        return FilterStats(self.read + other.read, self.kept + other.kept, self.dropped + other.dropped,
                           stages)

    def to_dict(self) -> dict:
        """Plain JSON-able form, for logs and summary tables."""
        return {
            "read": self.read, "kept": self.kept, "dropped": self.dropped,
            "stages": {name: {"read": c.read, "kept": c.kept, "dropped": c.dropped,
                              "reasons": dict(c.reasons)} for name, c in self.stages.items()},
        }


def _object_array(values: list) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=len(values))


def float_column(batch: pa.Table | pa.RecordBatch, name: str) -> np.ndarray:
    """Column `name` as float64, NaN where null or where the batch lacks the column.

    A non-numeric column is a reader or recipe error, not a bad row: it raises naming the column.
    """
    if name not in batch.column_names:
        return np.full(batch.num_rows, np.nan)
    column = batch[name]
    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_null(kind)):
        raise ValueError(f"column {name!r} must be numeric, got {kind}")
    values = pc.cast(column, pa.float64(), safe=False).to_numpy(zero_copy_only=False)
    return np.array(values, dtype=np.float64)  # writable copy


def string_values(batch: pa.Table, name: str) -> list[str | None]:
    """Column `name` as Python strings, all None where the batch lacks it; a non-string column raises."""
    if name not in batch.column_names:
        return [None] * batch.num_rows
    kind = batch[name].type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind)):
        raise ValueError(f"column {name!r} must be text, got {kind}")
    return batch[name].to_pylist()


def set_column(table: pa.Table, name: str, values: pa.Array | pa.ChunkedArray | list) -> pa.Table:
    """Add column `name`, or replace it in place if the table already has it."""
    column = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    index = table.schema.get_field_index(name)
    return table.append_column(name, column) if index < 0 else table.set_column(index, name, column)


def transpose(rows: list[tuple], width: int) -> list[list]:
    """Per-row result tuples -> one list per field (`width` empty lists when there are no rows)."""
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def run_filters(batch: pa.Table, filters: Sequence[Filter]) -> tuple[pa.Table, pa.Table, FilterStats]:
    """Apply `filters` in order, each on the rows that survived the ones before.

    Returns (kept, dropped, stats). `dropped` holds every dropped row once, with the columns known when it
    was dropped plus `reason` and `stage` (the first reason wins); columns measured later are null there.
    """
    stats = FilterStats(read=batch.num_rows)
    dropped_parts: list[pa.Table] = []
    current = batch
    for flt in filters:
        result = flt.apply(current)
        keep = np.asarray(result.keep, dtype=bool)
        n_kept = int(keep.sum())
        counts = StageCounts(read=current.num_rows, kept=n_kept, dropped=current.num_rows - n_kept)
        if counts.dropped:
            drop_idx = np.flatnonzero(~keep)
            reasons = _object_array(result.reasons)[drop_idx]
            reasons[reasons == None] = flt.name  # noqa: E711 (a drop without a reason is named by its stage)
            counts.reasons = dict(Counter(reasons.tolist()))
            part = result.batch.take(pa.array(drop_idx))
            part = part.append_column("reason", pa.array(reasons, pa.string()))
            part = part.append_column("stage", pa.array([flt.name] * len(drop_idx), pa.string()))
            dropped_parts.append(part)
        stats.stages[flt.name] = stats.stages[flt.name].merge(counts) if flt.name in stats.stages else counts
        current = result.batch.filter(pa.array(keep)) if counts.dropped else result.batch
    stats.kept = current.num_rows
    stats.dropped = stats.read - stats.kept
    return current, _concat_dropped(batch.schema, dropped_parts), stats


def _concat_dropped(input_schema: pa.Schema, parts: list[pa.Table]) -> pa.Table:
    """One table of dropped rows; columns a part lacks are filled with nulls."""
    if not parts:
        empty = input_schema.empty_table()
        return empty.append_column("reason", pa.array([], pa.string())).append_column(
            "stage", pa.array([], pa.string()))
    return pa.concat_tables(parts, promote_options="permissive")
