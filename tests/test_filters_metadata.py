import math

import pyarrow as pa
import pytest

from vlforge.filters.base import run_filters
from vlforge.filters.metadata import AspectRatioFilter, ImageSizeFilter


def sizes(widths, heights, width_type=None):
    n = len(widths)
    width_type = width_type or pa.int64()
    return pa.table({"uid": [str(i) for i in range(n)], "width": pa.array(widths, width_type),
                     "height": pa.array(heights, width_type)})


def test_aspect_ratio_bound_and_measure():
    batch = sizes([100, 300, 301, 100, 640], [300, 100, 100, 100, 480])
    result = AspectRatioFilter(max_ratio=3.0).apply(batch)
    assert result.keep.tolist() == [True, True, False, True, True]
    assert result.reasons[2] == "aspect_ratio>3"
    ratios = result.batch["aspect_ratio"].to_pylist()
    assert ratios[0] == 3.0 and ratios[1] == 3.0 and ratios[2] == pytest.approx(3.01)
    assert ratios[4] == pytest.approx(640 / 480)


def test_null_zero_negative_sizes_dropped_with_reasons():
    batch = sizes([None, 0, -5, 640, 640], [480, 480, 480, None, 480])
    for flt in (AspectRatioFilter(), ImageSizeFilter()):
        result = flt.apply(batch)
        expected = ["size_missing", "size_invalid", "size_invalid", "size_missing", None]
        assert result.reasons == expected, flt.name


def test_nan_and_inf_sizes_from_float_columns():
    batch = sizes([float("nan"), math.inf, 640.0], [480.0, 480.0, 480.0], pa.float64())
    result = ImageSizeFilter().apply(batch)
    assert result.reasons == ["size_missing", "size_invalid", None]
    assert result.batch["min_side"].to_pylist() == [None, None, 480]


def test_missing_keep_lets_unknown_sizes_through_but_not_invalid_ones():
    batch = sizes([None, -1, 1000], [None, 10, 100])
    result = AspectRatioFilter(missing="keep").apply(batch)
    assert result.reasons == [None, "size_invalid", "aspect_ratio>3"]
    assert result.batch["aspect_ratio"].to_pylist()[0] is None


def test_absent_columns_mean_missing_sizes():
    batch = pa.table({"uid": ["a", "b"]})
    assert ImageSizeFilter().apply(batch).reasons == ["size_missing", "size_missing"]
    assert ImageSizeFilter(missing="keep").apply(batch).keep.tolist() == [True, True]


def test_image_size_min_side_and_max_pixels():
    batch = sizes([199, 200, 10000, 8000], [500, 200, 10000, 6000])
    result = ImageSizeFilter(min_side=200, max_pixels=50_000_000).apply(batch)
    assert result.reasons == ["min_side<200", None, "pixels>50000000", None]
    assert result.batch["pixels"].to_pylist() == [99500, 40000, 100_000_000, 48_000_000]
    assert result.batch["min_side"].to_pylist() == [199, 200, 10000, 6000]
    off = ImageSizeFilter(min_side=None, max_pixels=None).apply(batch)
    assert off.keep.all()


def test_real_sizes_pass_reuses_the_filters_under_other_stage_names():
    batch = sizes([640, 100], [480, 1000])
    kept, dropped = run_filters(batch, [AspectRatioFilter(name="aspect_ratio_real"),
                                        ImageSizeFilter(name="image_size_real")])
    assert kept["uid"].to_pylist() == ["0"]
    assert dropped["stage"].to_pylist() == ["aspect_ratio_real"]
    assert {"aspect_ratio", "min_side", "pixels"} <= set(kept.column_names)  # both stages measured row 0


def test_bad_parameters_are_named():
    with pytest.raises(ValueError, match="max_ratio"):
        AspectRatioFilter(max_ratio=0.5)
    with pytest.raises(ValueError, match="missing"):
        ImageSizeFilter(missing="ignore")
    with pytest.raises(ValueError, match="min_side"):
        ImageSizeFilter(min_side=-1)


def test_non_numeric_size_column_is_an_error_naming_it():
    batch = pa.table({"width": ["640"], "height": pa.array([480], pa.int64())})
    with pytest.raises(ValueError, match="'width' must be numeric"):
        AspectRatioFilter().apply(batch)
