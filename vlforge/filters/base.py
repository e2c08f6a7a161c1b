"""The filter contract: an operator measures a batch, says which rows to keep and why the rest go.

Every operator takes an Arrow batch and returns the same rows with its measured columns added, a keep
mask and a short, stable reason per dropped row. `run_filters` chains operators on the survivors and
splits the batch into kept and dropped tables, so every input row lands in exactly one manifest row.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import ConfigDict, validate_call

OPERATORS: dict[str, type[Filter]] = {}  # op -> class, filled as filter modules are imported
# Decorates a filter's __init__: its type hints (Literal choices, Annotated[int, Field(ge=0)] bounds) are the
# parameters' one definition, checked here on construction and by the recipe (a model of the same signature).
checked_params = validate_call(config=ConfigDict(arbitrary_types_allowed=True))


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
    """One cleaning operator. `name` is the stage recorded in the manifest column `stage`.

    A subclass with an `op` registers itself as the recipe operator of that name (see `vlforge.filters.registry`)
    and says what the pipeline must know about it: whether it reads the downloaded `image` bytes, which
    measured columns are scores (a sample's JSON `scores`), which stay out of the manifest.
    """

    name: str
    op: ClassVar[str] = ""  # the recipe's `op:`; empty for helpers and bases
    needs_image: ClassVar[bool] = False
    score_columns: ClassVar[tuple[str, ...]] = ()
    private_columns: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("op"):
            if cls.op in OPERATORS and OPERATORS[cls.op] is not cls:
                raise TypeError(f"filter op {cls.op!r} registered twice: {OPERATORS[cls.op].__name__}, {cls.__name__}")
            OPERATORS[cls.op] = cls

    @abstractmethod
    def apply(self, batch: pa.Table) -> FilterResult:
        """Measure `batch` and decide per row. Must accept an empty batch (schema stays stable)."""


class RowFilter(Filter):
    """A filter that judges one row at a time: `judge(value)` returns the row's measured values and then its
    drop reason (None: keep); they become the columns `outputs()` names, on the batch `prepare` returns."""

    @abstractmethod
    def inputs(self, batch: pa.Table) -> list:
        """The value `judge` gets, per row."""

    @abstractmethod
    def judge(self, value: object) -> tuple:
        """(*measured values, reason or None) of one row."""

    @abstractmethod
    def outputs(self) -> list[tuple[str, pa.DataType]]:
        """Name and type of the column each measured value goes to, in `judge`'s order."""

    def prepare(self, batch: pa.Table, values: list) -> pa.Table:
        """Columns set before the measured ones (e.g. the raw input kept beside its cleaned form)."""
        return batch

    def apply(self, batch: pa.Table) -> FilterResult:
        values = self.inputs(batch)
        outputs = self.outputs()
        *measured, reasons = transpose([self.judge(value) for value in values], len(outputs) + 1)
        out = self.prepare(batch, values)
        for (name, kind), column in zip(outputs, measured, strict=True):
            out = set_column(out, name, pa.array(column, kind))
        return FilterResult.from_reasons(out, reasons)


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


def run_filters(batch: pa.Table, filters: Sequence[Filter]) -> tuple[pa.Table, pa.Table]:
    """Apply `filters` in order, each on the rows that survived the ones before.

    Returns (kept, dropped). `dropped` holds every dropped row once, with the columns known when it was
    dropped plus `reason` and `stage` (the first reason wins); columns measured later are null there.
    """
    dropped_parts: list[pa.Table] = []
    current = batch
    for flt in filters:
        result = flt.apply(current)
        keep = np.asarray(result.keep, dtype=bool)
        if not keep.all():
            drop_idx = np.flatnonzero(~keep)
            reasons = _object_array(result.reasons)[drop_idx]
            reasons[reasons == None] = flt.name  # noqa: E711 (a drop without a reason is named by its stage)
            part = result.batch.take(pa.array(drop_idx))
            part = part.append_column("reason", pa.array(reasons, pa.string()))
            part = part.append_column("stage", pa.array([flt.name] * len(drop_idx), pa.string()))
            dropped_parts.append(part)
            current = result.batch.filter(pa.array(keep))
        else:
            current = result.batch
    return current, _concat_dropped(batch.schema, dropped_parts)


def _concat_dropped(input_schema: pa.Schema, parts: list[pa.Table]) -> pa.Table:
    """One table of dropped rows; columns a part lacks are filled with nulls."""
    if not parts:
        empty = input_schema.empty_table()
        return empty.append_column("reason", pa.array([], pa.string())).append_column(
            "stage", pa.array([], pa.string()))
    return pa.concat_tables(parts, promote_options="permissive")
