"""Reading `vlforge score` inputs: predictions `{"id", "prediction"}` and references `{"id", "references"}`
(plus `"image_size": [w, h]` for grounding), one JSON object a line. Every problem names FILE:LINE."""

import json
import math
from pathlib import Path

from vlforge.evaluation.metrics import BOX_METRICS, Item
from vlforge.formats.errors import describe

_SHOWN_IDS = 5


class LineError(ValueError):
    def __init__(self, path: Path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")


def _records(path: Path):
    """(line number, JSON object) for every non-blank line."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                raise LineError(path, n, "not valid UTF-8") from None
            except json.JSONDecodeError as exc:
                raise LineError(path, n, f"invalid JSON ({exc.msg} at column {exc.colno})") from None
            if not isinstance(record, dict):
                raise LineError(path, n, f"expected a JSON object, got {type(record).__name__}")
            yield n, record


def _read_keyed(path: Path) -> dict[str, tuple[int, dict]]:
    """Records by id (a string or an integer; 7 and "7" are the same id); duplicate ids are errors."""
    by_id: dict[str, tuple[int, dict]] = {}
    for n, record in _records(path):
        key = record.get("id")
        if isinstance(key, bool) or not isinstance(key, (str, int)):
            raise LineError(path, n, f"\"id\" must be a string or an integer, got {describe(key)}")
        key = str(key)
        if key in by_id:
            raise LineError(path, n, f"id {key!r} already appeared on line {by_id[key][0]}")
        by_id[key] = (n, record)
    return by_id


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _boxes(value: object) -> list[list[float]] | None:
    """[[x1, y1, x2, y2], ...] (a single flat box is accepted) with x1 <= x2 and y1 <= y2, else None."""
    boxes = [value] if isinstance(value, list) and len(value) == 4 and all(map(_is_number, value)) else value
    if not isinstance(boxes, list) or not boxes:
        return None
    for box in boxes:
        if not (isinstance(box, list) and len(box) == 4 and all(map(_is_number, box))):
            return None
        if box[0] > box[2] or box[1] > box[3]:
            return None
    return [[float(v) for v in box] for box in boxes]


def _image_size(value: object) -> tuple[int, int] | None:
    ok = isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)
    return (value[0], value[1]) if ok and not any(isinstance(v, bool) for v in value) else None


def read_predictions(path: Path) -> dict[str, str]:
    out = {}
    for key, (n, record) in _read_keyed(path).items():
        prediction = record.get("prediction")
        if not isinstance(prediction, str):
            raise LineError(path, n, f"\"prediction\" must be a string, got {describe(prediction)}")
        out[key] = prediction
    return out


def check_references(refs: object, metric: str) -> list:
    """The references of one sample in the form `metric` needs (strings, or pixel boxes for grounding)."""
    if metric in BOX_METRICS:
        boxes = _boxes(refs)
        if boxes is None:
            raise ValueError("\"references\" must be a non-empty list of pixel boxes [x1, y1, x2, y2] "
                             f"with x1 <= x2 and y1 <= y2, got {describe(refs)}")
        return boxes
    if not (isinstance(refs, list) and refs and all(isinstance(r, str) for r in refs)):
        raise ValueError(f"\"references\" must be a non-empty list of strings, got {describe(refs)}")
    return refs


def read_references(path: Path, metric: str) -> list[Item]:
    """Items in file order, predictions still empty; references checked for what `metric` needs."""
    items = []
    for key, (n, record) in _read_keyed(path).items():
        try:
            refs = check_references(record.get("references"), metric)
        except ValueError as exc:
            raise LineError(path, n, str(exc)) from None
        size = None
        if metric in BOX_METRICS:
            size = _image_size(record.get("image_size"))
            if size is None:
                raise LineError(path, n, f"\"image_size\" must be [width, height] in pixels (positive integers), "
                                         f"got {describe(record.get('image_size'))}")
        items.append(Item(key, "", refs, size))
    return items


def _some(ids: list[str]) -> str:
    shown = ", ".join(repr(i) for i in ids[:_SHOWN_IDS])
    return shown + (f" and {len(ids) - _SHOWN_IDS} more" if len(ids) > _SHOWN_IDS else "")


def join_inputs(predictions_path: Path, references_path: Path, metric: str) -> list[Item]:
    """The referenced samples with their predictions; an id on one side only is an error listing such ids."""
    predictions = read_predictions(predictions_path)
    items = read_references(references_path, metric)
    missing = [item.id for item in items if item.id not in predictions]
    known = {item.id for item in items}
    extra = [key for key in predictions if key not in known]
    problems = []
    if missing:
        problems.append(f"{len(missing)} ids in {references_path} have no prediction in {predictions_path}: "
                        f"{_some(missing)}")
    if extra:
        problems.append(f"{len(extra)} ids in {predictions_path} have no reference in {references_path}: "
                        f"{_some(extra)}")
    if problems:
        raise ValueError("; ".join(problems))
    if not items:
        raise ValueError(f"{references_path}: no references to score")
    for item in items:
        item.prediction = predictions[item.id]
    return items
