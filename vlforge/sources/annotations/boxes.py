"""The out-of-image rule every adapter's boxes go through before rendering.

A box is compared with its frame (the image, or GRIT's unit square). If at least MIN_INSIDE of its area
lies inside, it is clipped to the frame; otherwise the sample is rejected (`box_outside_image`). A box of
zero area counts as inside when its corner is. Both outcomes are counted in the manifest.
"""

from __future__ import annotations

from vlforge.formats.coords import pixel_box
from vlforge.formats.errors import FieldError

MIN_INSIDE = 0.5


class BoxOutside(ValueError):
    """A box that lies mostly outside its image."""


def fit_box(box: list, width: float, height: float, box_format: str = "xyxy", field: str = "box") -> tuple[list, bool]:
    """([x1, y1, x2, y2] clipped to the frame, whether it was clipped); BoxOutside when MIN_INSIDE is not met."""
    x1, y1, x2, y2 = pixel_box(box, box_format, field)
    cx1, cy1, cx2, cy2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    area = (x2 - x1) * (y2 - y1)
    inside = max(cx2 - cx1, 0.0) * max(cy2 - cy1, 0.0)
    corner_inside = 0 <= x1 <= width and 0 <= y1 <= height
    share = inside / area if area > 0 else float(corner_inside)
    if share < MIN_INSIDE:
        raise BoxOutside(f"{field}: {share:.0%} of the box {list(box)} lies inside the {width}x{height} image "
                         f"(need {MIN_INSIDE:.0%})")
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    fitted = [cx1, cy1, max(cx2, cx1), max(cy2, cy1)]
    return fitted, clipped


def fit_record(task: str, record: dict, width: float, height: float) -> tuple[dict, int]:
    """The record with every box clipped to the frame and written xyxy; returns (record, boxes clipped).

    Raises BoxOutside for a box mostly outside, FieldError for a malformed one.
    """
    fmt = record.get("box_format", "xyxy")
    if task in ("ref_grounding", "grounded_caption"):
        box, clipped = fit_box(record.get("box"), width, height, fmt)
        return {**record, "box": box, "box_format": "xyxy"}, int(clipped)
    if task != "grounding":
        return record, 0
    refs, count = [], 0
    if not isinstance(record.get("refs"), list):
        raise FieldError("refs", "must be a list")
    for i, ref in enumerate(record["refs"]):
        if not isinstance(ref, dict) or not isinstance(ref.get("boxes"), list):
            raise FieldError(f"refs[{i}].boxes", "must be a list of boxes")
        boxes = []
        for j, box in enumerate(ref["boxes"]):
            fitted, clipped = fit_box(box, width, height, fmt, f"refs[{i}].boxes[{j}]")
            boxes.append(fitted)
            count += clipped
        refs.append({**ref, "boxes": boxes})
    return {**record, "refs": refs, "box_format": "xyxy"}, count
