"""The filter contract: an operator measures a batch, says which rows to keep and why the rest go.

Every operator takes an Arrow batch and returns the same rows with its measured columns added, a keep
mask and a short, stable reason per dropped row. `run_filters` chains operators on the survivors and
splits the batch into kept and dropped tables (`split_rows`, also the clean unit's read/dedup/download
split), so every input row lands in exactly one manifest row. `ScoreHistogram` turns a top fraction of a
`ranks_by` step into a threshold per source (the clean plan).
"""

from __future__ import annotations

import math
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
    measured columns are scores (a sample's JSON `scores`), which stay out of the manifest, and what a
    recipe may and must do with it (top fraction, order in the chain).
    """

    name: str
    op: ClassVar[str] = ""  # the recipe's `op:`; empty for helpers and bases
    needs_image: ClassVar[bool] = False
    # validates the downloaded bytes and names their file extension (`image_ext`): every source needs one
    validates_image: ClassVar[bool] = False
    needs_steps_before: ClassVar[tuple[str, ...]] = ()  # ops that must run earlier in the same chain
    # the score column a `top_fraction:` step ranks rows by (a step's `column:` overrides it); None: no top fraction
    ranks_by: ClassVar[str | None] = None
    # keeps state across rows (what it has seen): one instance per unit chain, never a shared actor pool
    stateful: ClassVar[bool] = False
    score_columns: ClassVar[tuple[str, ...]] = ()
    sample_columns: ClassVar[tuple[str, ...]] = ()  # measured columns a kept sample's JSON carries (null if unmeasured)
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


class ScoreHistogram:
    """Fixed-bin histogram of scores in [-1, 1] per source: bounded memory, mergeable across workers.

    Memory is `bins` int64 counts per source (160 KB at the default); a threshold it yields is exact up to
    one bin width (2 / bins = 1e-4 at the default). Scores outside [-1, 1] are clipped into the end bins;
    null and NaN scores are not counted.
    """

    def __init__(self, bins: int = 20_000) -> None:
        if bins < 2:
            raise ValueError(f"bins must be >= 2, got {bins!r}")
        self.bins = bins
        self.counts: dict[str, np.ndarray] = {}

    def _bin_of(self, scores: np.ndarray) -> np.ndarray:
        """Bin of each score: [-1, 1] cut into `bins` equal bins, scores outside clipped into the end bins."""
        return np.clip(((scores + 1.0) / 2.0 * self.bins).astype(np.int64), 0, self.bins - 1)

    def add(self, batch: pa.Table | pa.RecordBatch, column: str,
            source_col: str = "source") -> None:
        """Count the batch's scores; rows with a null score or a null source are not counted."""
        scores = float_column(batch, column)
        sources = batch[source_col].to_numpy(zero_copy_only=False)
        valid = ~np.isnan(scores) & pc.is_valid(batch[source_col]).to_numpy(zero_copy_only=False)
        index = self._bin_of(scores[valid])
        valid_sources = sources[valid]
        for source in set(valid_sources.tolist()):
            counts = self.counts.setdefault(str(source), np.zeros(self.bins, dtype=np.int64))
            counts += np.bincount(index[valid_sources == source], minlength=self.bins)

    def merge(self, other: ScoreHistogram) -> ScoreHistogram:
        if other.bins != self.bins:
            raise ValueError(f"cannot merge histograms with {self.bins} and {other.bins} bins")
        merged = ScoreHistogram(self.bins)
        for source in set(self.counts) | set(other.counts):
            merged.counts[source] = self.counts.get(source, 0) + other.counts.get(source, 0)
        return merged

    def threshold(self, source: str, top_fraction: float) -> float:
        """Start t of the lowest bin such that the rows scoring >= t are at least `top_fraction` of the source.

        The rows scoring >= t are exactly the rows counted in that bin and above (see `_lowest_score_in`).
        """
        counts = self.counts[source]
        wanted = math.ceil(round(top_fraction * int(counts.sum()), 6))  # 0.07 * 100 = 7.000000000000001
        from_top = np.cumsum(counts[::-1])
        top_bins = int(np.searchsorted(from_top, max(wanted, 1))) + 1
        return self._lowest_score_in(self.bins - top_bins)

    def _lowest_score_in(self, first: int) -> float:
        """The smallest float `add` counts in bin `first` or above, so `score >= it` keeps exactly those rows.

        The edge -1 + 2 * first / bins is that value only up to rounding, and rounding can put it above a
        score counted in bin `first` (0.35 -> 0.3500000000000001). So bisect between a float of the bin
        below and one of bin `first` until they are adjacent floats. Bin 0 starts at -1, the lowest cosine.
        """
        if first == 0:
            return -1.0
        below = -1.0 + 2.0 * (first - 0.25) / self.bins  # a quarter bin each side of the edge
        above = -1.0 + 2.0 * (first + 0.25) / self.bins
        while (middle := (below + above) / 2) not in (below, above):
            if self._bin_of(np.float64(middle)) >= first:
                above = middle
            else:
                below = middle
        return float(np.nextafter(below, np.inf))  # every score of bin `first` or above is > below


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


def image_values(batch: pa.Table, name: str) -> list[bytes | None]:
    """Column `name` (image bytes) as Python values, all None where the batch lacks it (judged 'image_missing')."""
    return batch[name].to_pylist() if name in batch.column_names else [None] * batch.num_rows


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
        current, part = split_rows(result.batch, result.reasons, flt.name, result.keep)
        if part.num_rows:
            dropped_parts.append(part)
    return current, _concat_dropped(batch.schema, dropped_parts)


def split_rows(table: pa.Table, reasons: Sequence[str | None], stage: str,
               keep: np.ndarray | None = None) -> tuple[pa.Table, pa.Table]:
    """(kept rows, dropped rows with their `reason` and `stage`), the split every stage of a unit makes.

    Without `keep`, a row is dropped exactly when it has a reason; a dropped row without one is named by `stage`.
    """
    reason_array = _object_array(list(reasons))
    keep = np.asarray(reason_array == None if keep is None else keep, dtype=bool)  # noqa: E711 (elementwise)
    drop_idx = np.flatnonzero(~keep)
    dropped_reasons = reason_array[drop_idx]
    dropped_reasons[dropped_reasons == None] = stage  # noqa: E711 (elementwise on an object array)
    dropped = table.take(pa.array(drop_idx, pa.int64()))
    dropped = dropped.append_column("reason", pa.array(dropped_reasons, pa.string()))
    dropped = dropped.append_column("stage", pa.array([stage] * len(drop_idx), pa.string()))
    return (table if keep.all() else table.filter(pa.array(keep))), dropped


def _concat_dropped(input_schema: pa.Schema, parts: list[pa.Table]) -> pa.Table:
    """One table of dropped rows; columns a part lacks are filled with nulls."""
    if not parts:
        empty = input_schema.empty_table()
        return empty.append_column("reason", pa.array([], pa.string())).append_column(
            "stage", pa.array([], pa.string()))
    return pa.concat_tables(parts, promote_options="permissive")
