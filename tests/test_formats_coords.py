"""Coordinate normalisation: int(v / size * 1000) clamped to 0..999, x by width, y by height."""

import math
import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlforge.formats.coords import box_text, norm, quad_text

finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12)
sizes = st.integers(min_value=1, max_value=100_000)


@pytest.mark.parametrize(
    ("v", "size", "expected"),
    [(0, 640, 0), (320, 640, 500), (639.9, 640, 999), (640, 640, 999), (1e9, 640, 999), (-5, 640, 0),
     (1, 1000, 1), (0.999, 1000, 0), (289, 640, 451), (182, 480, 379)],
)
def test_norm_examples(v, size, expected):
    assert norm(v, size) == expected


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_norm_rejects_non_finite(bad):
    with pytest.raises(ValueError):
        norm(bad, 640)


def test_norm_rejects_empty_image():
    with pytest.raises(ValueError):
        norm(1, 0)


@given(finite, sizes)
def test_norm_is_always_on_the_grid(v, size):
    assert 0 <= norm(v, size) <= 999


@given(finite, finite, sizes)
def test_norm_is_monotone(a, b, size):
    low, high = sorted((a, b))
    assert norm(low, size) <= norm(high, size)


@given(st.data(), sizes)
def test_norm_inside_the_image_is_the_floor_of_the_exact_ratio(data, size):
    v = data.draw(st.floats(min_value=0, max_value=size, exclude_max=True))
    exact = math.floor(Fraction(v) * 1000 / size)
    assert abs(norm(v, size) - exact) <= 1  # float rounding may cross an integer only at a hair's breadth


def box_numbers(text):
    match = re.fullmatch(r"<box>\((\d+),(\d+)\),\((\d+),(\d+)\)</box>", text)
    assert match, text
    return [int(g) for g in match.groups()]


boxes = st.tuples(finite, finite, finite, finite).map(
    lambda c: [min(c[0], c[2]), min(c[1], c[3]), max(c[0], c[2]), max(c[1], c[3])]
)


@given(boxes, sizes, sizes, sizes)
def test_box_x_uses_width_and_y_uses_height(box, width, height, other):
    x1, y1, x2, y2 = box_numbers(box_text(box, width, height))
    wider = box_numbers(box_text(box, other, height))
    taller = box_numbers(box_text(box, width, other))
    assert (wider[1], wider[3]) == (y1, y2)  # changing the width leaves y alone
    assert (taller[0], taller[2]) == (x1, x2)  # changing the height leaves x alone
    assert x1 <= x2 and y1 <= y2


@given(st.data(), sizes, sizes)
def test_box_coordinates_follow_the_exact_ratios(data, width, height):
    x1, x2 = sorted(data.draw(st.floats(0, width, exclude_max=True)) for _ in range(2))
    y1, y2 = sorted(data.draw(st.floats(0, height, exclude_max=True)) for _ in range(2))
    got = box_numbers(box_text([x1, y1, x2, y2], width, height))
    pairs = ((x1, width), (y1, height), (x2, width), (y2, height))
    exact = [math.floor(Fraction(v) * 1000 / size) for v, size in pairs]
    assert all(abs(g - e) <= 1 for g, e in zip(got, exact, strict=True))


@given(boxes, sizes, sizes)
def test_coco_boxes_equal_their_corner_form(box, width, height):
    x1, y1, x2, y2 = box
    xywh = [x1, y1, x2 - x1, y2 - y1]
    if xywh[2] >= 0 and xywh[3] >= 0 and math.isfinite(xywh[2]) and math.isfinite(xywh[3]):
        corners = [x1, y1, xywh[0] + xywh[2], xywh[1] + xywh[3]]
        assert box_text(xywh, width, height, "xywh") == box_text(corners, width, height)


def test_box_and_quad_text_have_no_spaces():
    assert box_text([0, 0, 320, 240], 640, 480) == "<box>(0,0),(500,500)</box>"
    assert quad_text([[0, 0], [320, 0], [320, 240], [0, 240]], 640, 480) == (
        "<quad>(0,0),(500,0),(500,500),(0,500)</quad>"
    )
