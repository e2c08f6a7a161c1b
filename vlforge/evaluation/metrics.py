"""The metric names `vlforge score` and `vlforge eval` accept, and scoring a list of samples with one of them."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vlforge.evaluation.answer_metrics import anls, choice_match, exact_match, relaxed_match, vqa_score
from vlforge.evaluation.cider import cider_d, tokenize
from vlforge.evaluation.grounding import IOU_THRESHOLD, grounding_iou

_ANSWER_METRICS: dict[str, Callable[[str, list[str]], float]] = {
    "vqa": vqa_score,
    "anls": anls,
    "relaxed": relaxed_match,
    "exact": exact_match,
    "choice": choice_match,
}
METRICS = ("vqa", "cider", "anls", "relaxed", "exact", "choice", "grounding")
BOX_METRICS = ("grounding",)


@dataclass
class Item:
    """One scored sample: the model's text and what it is compared with (answers, captions or pixel boxes)."""

    id: str
    prediction: str
    references: list
    image_size: tuple[int, int] | None = None


@dataclass
class MetricResult:
    """score: the mean of `per_sample`, on the 0-100 scale papers report (CIDEr-D: 100 x the COCO value)."""

    metric: str
    score: float
    count: int
    per_sample: list[float]
    columns: dict[str, list] = field(default_factory=dict)  # extra per-sample columns for the parquet file
    extras: dict[str, int] = field(default_factory=dict)  # extra counts for the summary (unparseable boxes)


def _grounding(items: Sequence[Item]) -> tuple[list[float], dict[str, list], dict[str, int]]:
    boxes, ious = [], []
    for item in items:
        if item.image_size is None:
            raise ValueError(f"id {item.id}: grounding needs the image size")
        box, iou = grounding_iou(item.prediction, item.references, item.image_size)
        boxes.append(None if box is None else list(box))
        ious.append(iou)
    scores = [float(iou >= IOU_THRESHOLD) for iou in ious]
    unparseable = sum(box is None for box in boxes)
    return scores, {"pred_box": boxes, "iou": ious}, {"unparseable": unparseable}


def score_items(metric: str, items: Sequence[Item]) -> MetricResult:
    """Score every item with `metric`; CIDEr-D takes its document frequencies from these items' references."""
    columns: dict[str, list] = {}
    extras: dict[str, int] = {}
    if metric in _ANSWER_METRICS:
        scores = [_ANSWER_METRICS[metric](item.prediction, item.references) for item in items]
    elif metric == "cider":
        scores = cider_d([tokenize(i.prediction) for i in items], [[tokenize(r) for r in i.references] for i in items])
    elif metric == "grounding":
        scores, columns, extras = _grounding(items)
    else:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
    per_sample = [100.0 * s for s in scores]
    mean = sum(per_sample) / len(per_sample) if per_sample else 0.0
    return MetricResult(metric, mean, len(items), per_sample, columns, extras)
