"""Captions with grounding: each referred span written `<ref>span</ref><box>..</box>...` as Qwen-VL does."""

from vlforge.formats.coords import box_text
from vlforge.formats.errors import FieldError, describe
from vlforge.formats.record import require


def _span(ref: object, caption: str, field: str) -> tuple[int, int]:
    if not isinstance(ref, dict):
        raise FieldError(field, f"must be an object, got {describe(ref)}")
    span = require(ref, "span", list, f"{field}.span")
    if len(span) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in span):
        raise FieldError(f"{field}.span", f"must be [start, end] character offsets, got {describe(span)}")
    start, end = span
    if not 0 <= start < end <= len(caption):
        raise FieldError(
            f"{field}.span", f"{span} is outside the caption (need 0 <= start < end <= {len(caption)})"
        )
    return start, end


def _boxes(ref: dict, width: int, height: int, box_format: str, field: str) -> str:
    boxes = require(ref, "boxes", list, f"{field}.boxes")
    if not boxes:
        raise FieldError(f"{field}.boxes", "must not be empty")
    return "".join(
        box_text(box, width, height, box_format, f"{field}.boxes[{i}]") for i, box in enumerate(boxes)
    )


def grounded_answer(caption: str, refs: list, width: int, height: int, box_format: str) -> str:
    """` {caption}` with every ref span marked up.

    Qwen-VL opens a `<ref>` before the space that precedes its span (` and<ref> her dog</ref>`), so a span at
    the start of the caption takes the answer's leading space (`grounding:<ref> Woman</ref>`). Spans may come
    in any order; overlapping spans are an error.
    """
    if not refs:
        raise FieldError("refs", "must not be empty")
    marked = []
    for i, ref in enumerate(refs):
        start, end = _span(ref, caption, f"refs[{i}]")
        marked.append((start + 1, end + 1, i, _boxes(ref, width, height, box_format, f"refs[{i}]")))
    marked.sort()
    text = " " + caption
    parts, pos, previous = [], 0, None
    for start, end, i, boxes in marked:
        if start < pos:
            raise FieldError(f"refs[{i}].span", f"overlaps refs[{previous}].span")
        opens = start - 1 if text[start - 1] == " " and start - 1 >= pos else start
        parts += [text[pos:opens], "<ref>", text[opens:end], "</ref>", boxes]
        pos, previous = end, i
    parts.append(text[pos:])
    return "".join(parts)
