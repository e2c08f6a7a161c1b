"""Referring-expression accuracy: the first box a model writes, mapped from Qwen-VL's [0, 1000) grid back
to pixels, is a hit when its IoU with a reference box is at least 0.5."""

import re
from collections.abc import Sequence

IOU_THRESHOLD = 0.5
GRID = 1000
_NUMBER = r"\s*(-?\d+(?:\.\d+)?)\s*"
# "<box>(x1,y1),(x2,y2)</box>"; the <box> may be absent (the prompt ends with it, or the decoder skipped it)
_BOX = re.compile(rf"\({_NUMBER},{_NUMBER}\)\s*,\s*\({_NUMBER},{_NUMBER}\)")

Box = tuple[float, float, float, float]


def parse_box(prediction: str) -> Box | None:
    """(x1, y1, x2, y2) on the 0..999 grid from the first `(x1,y1),(x2,y2)` in the text, else None."""
    match = _BOX.search(prediction)
    return tuple(float(v) for v in match.groups()) if match else None  # type: ignore[return-value]


def to_pixels(box: Box, width: int, height: int) -> Box:
    """Grid -> pixels, the inverse of the renderer's int(x / width * 1000) (Qwen-VL's eval_mm divides by
    999 instead; the difference is a tenth of a percent of the image side)."""
    x1, y1, x2, y2 = box
    return x1 / GRID * width, y1 / GRID * height, x2 / GRID * width, y2 / GRID * height


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes; an inverted or empty box overlaps nothing."""
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def grounding_iou(prediction: str, references: Sequence[Sequence[float]], image_size: Sequence[int]
                  ) -> tuple[Box | None, float]:
    """The predicted pixel box (None when no box can be read) and its best IoU with the reference boxes."""
    box = parse_box(prediction)
    if box is None:
        return None, 0.0
    pixels = to_pixels(box, image_size[0], image_size[1])
    return pixels, max(box_iou(pixels, ref) for ref in references)
