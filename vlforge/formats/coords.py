"""Pixel boxes and quads -> Qwen-VL's integer grid: each coordinate in [0, 1000), x by width, y by height."""

import math
from collections.abc import Sequence

from vlforge.formats.errors import FieldError, describe


def norm(v: float, size: int) -> int:
    """int(v / size * 1000) clamped to 0..999: a pixel coordinate on Qwen-VL's 1000-step grid."""
    if size <= 0:
        raise ValueError(f"image size must be positive, got {size}")
    if not math.isfinite(v):
        raise ValueError(f"coordinate must be finite, got {v}")
    return min(999, max(0, int(v / size * 1000)))


def _number(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FieldError(field, f"must be a number, got {describe(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise FieldError(field, f"must be finite, got {describe(value)}") from None
    if not math.isfinite(number):
        raise FieldError(field, f"must be finite, got {describe(value)}")
    return number


def _numbers(values: object, count: int, field: str) -> list[float]:
    if not isinstance(values, (list, tuple)) or len(values) != count:
        raise FieldError(field, f"must be a list of {count} numbers, got {describe(values)}")
    return [_number(v, f"{field}[{i}]") for i, v in enumerate(values)]


def pixel_box(box: Sequence[float], box_format: str = "xyxy", field: str = "box") -> tuple[float, ...]:
    """(x1, y1, x2, y2) in pixels from an [x1,y1,x2,y2] or COCO [x,y,w,h] box; rejects inverted boxes."""
    x1, y1, a, b = _numbers(box, 4, field)
    if box_format == "xywh":
        if a < 0 or b < 0:
            raise FieldError(field, f"width and height must not be negative, got {describe(box)}")
        return x1, y1, x1 + a, y1 + b
    if box_format != "xyxy":
        raise FieldError("box_format", f"must be 'xyxy' or 'xywh', got {describe(box_format)}")
    if a < x1 or b < y1:
        raise FieldError(field, f"inverted box {describe(box)}: need x1 <= x2 and y1 <= y2")
    return x1, y1, a, b


def box_text(
    box: Sequence[float], width: int, height: int, box_format: str = "xyxy", field: str = "box"
) -> str:
    """`<box>(x1,y1),(x2,y2)</box>` on the 0..999 grid."""
    x1, y1, x2, y2 = pixel_box(box, box_format, field)
    return f"<box>({norm(x1, width)},{norm(y1, height)}),({norm(x2, width)},{norm(y2, height)})</box>"


def quad_text(quad: Sequence[Sequence[float]], width: int, height: int, field: str = "quad") -> str:
    """`<quad>(x1,y1),(x2,y2),(x3,y3),(x4,y4)</quad>` on the 0..999 grid, points in the given order."""
    if not isinstance(quad, (list, tuple)) or len(quad) != 4:
        raise FieldError(field, f"must be a list of 4 [x, y] points, got {describe(quad)}")
    points = [_numbers(point, 2, f"{field}[{i}]") for i, point in enumerate(quad)]
    return "<quad>" + ",".join(f"({norm(x, width)},{norm(y, height)})" for x, y in points) + "</quad>"
