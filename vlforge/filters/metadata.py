"""Aspect-ratio and image-size filters on width/height columns, vectorised over the whole batch.

They run twice in a cleaning run: on the sizes a dump claims (before download, cheap) and on the real sizes
the image filter measured (after download). Missing, NaN, zero or negative sizes get their own reasons.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from vlforge.filters.base import Filter, FilterResult, checked_params, float_column, set_column

Missing = Literal["drop", "keep"]


def _sizes(batch: pa.Table, width_col: str, height_col: str) -> tuple[np.ndarray, np.ndarray]:
    """Width and height as float arrays, NaN where null or absent (a reader may lack the columns)."""
    return float_column(batch, width_col), float_column(batch, height_col)


def _size_reasons(width: np.ndarray, height: np.ndarray, missing: str) -> np.ndarray:
    """Reasons where sizes cannot be judged: 'size_missing' (null, NaN), 'size_invalid' (<= 0, inf)."""
    reasons = np.full(width.shape, None, dtype=object)
    nan = np.isnan(width) | np.isnan(height)
    with np.errstate(invalid="ignore"):
        invalid = ~nan & ~((width > 0) & (height > 0) & np.isfinite(width) & np.isfinite(height))
    if missing == "drop":
        reasons[nan] = "size_missing"
    reasons[invalid] = "size_invalid"
    return reasons


def _nullable_int(values: np.ndarray) -> pa.Array:
    """Whole-number float values as int64, null where NaN."""
    nan = np.isnan(values)
    return pa.array(np.where(nan, 0, values).astype(np.int64), pa.int64(), mask=nan)


class _SizeFilter(Filter):
    """Shared by the size-based filters: which columns hold the sizes, and what a missing size means."""

    def __init__(self, width_col: str, height_col: str, missing: Missing, name: str) -> None:
        self.width_col, self.height_col = width_col, height_col
        self.missing = missing
        self.name = name

    def _judged_sizes(self, batch: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(width, height, reasons so far, mask of rows whose sizes are valid)."""
        width, height = _sizes(batch, self.width_col, self.height_col)
        reasons = _size_reasons(width, height, self.missing)
        return width, height, reasons, reasons == None  # noqa: E711 (elementwise on an object array)


class AspectRatioFilter(_SizeFilter):
    """Drop images whose long side exceeds `max_ratio` times the short side; adds column `aspect_ratio`.

    `missing="keep"` lets rows without sizes through (the post-download pass judges the real sizes).
    """

    op = "aspect_ratio"

    @checked_params
    def __init__(self, max_ratio: Annotated[float, Field(ge=1.0)] = 3.0, *, width_col: str = "width",
                 height_col: str = "height", missing: Missing = "drop", name: str = "aspect_ratio") -> None:
        self.max_ratio = float(max_ratio)
        super().__init__(width_col, height_col, missing, name)

    def apply(self, batch: pa.Table) -> FilterResult:
        width, height, reasons, valid = self._judged_sizes(batch)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.maximum(width, height) / np.minimum(width, height)
        ratio[~valid | np.isnan(ratio)] = np.nan
        with np.errstate(invalid="ignore"):
            reasons[valid & (ratio > self.max_ratio)] = f"aspect_ratio>{self.max_ratio:g}"
        out = set_column(batch, "aspect_ratio", pa.array(ratio, pa.float64(), from_pandas=True))
        return FilterResult.from_reasons(out, reasons)


class ImageSizeFilter(_SizeFilter):
    """Drop images whose short side is below `min_side` or whose pixel count exceeds `max_pixels`.

    Adds columns `min_side` and `pixels`. Either bound may be None to switch it off.
    """

    op = "image_size"

    @checked_params
    def __init__(self, min_side: Annotated[int, Field(ge=0)] | None = 200,
                 max_pixels: Annotated[int, Field(gt=0)] | None = 50_000_000, *, width_col: str = "width",
                 height_col: str = "height", missing: Missing = "drop", name: str = "image_size") -> None:
        self.min_side, self.max_pixels = min_side, max_pixels
        super().__init__(width_col, height_col, missing, name)

    def apply(self, batch: pa.Table) -> FilterResult:
        width, height, reasons, valid = self._judged_sizes(batch)
        min_side = np.where(valid, np.minimum(width, height), np.nan)
        pixels = np.where(valid, width * height, np.nan)
        with np.errstate(invalid="ignore"):
            if self.max_pixels is not None:
                reasons[valid & (pixels > self.max_pixels)] = f"pixels>{self.max_pixels}"
            if self.min_side is not None:
                reasons[valid & (min_side < self.min_side)] = f"min_side<{self.min_side}"
        out = set_column(batch, "min_side", _nullable_int(min_side))
        out = set_column(out, "pixels", _nullable_int(pixels))
        return FilterResult.from_reasons(out, reasons)
