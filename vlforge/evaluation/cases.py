"""A rendered evaluation sample -> what the model is asked and what its answer is compared with.

The prompt is the sample's text up to its first supervised segment, so evaluation asks exactly what the
templates trained (and what Qwen-VL's eval_mm scripts ask): `<img></img>Generate the caption in English:`,
`<img></img>{question} Answer:`; for grounding the `<box>` that opens the answer joins the prompt
(`<img></img><ref>{expression}</ref><box>`), as eval_mm ends it, so the model continues with coordinates.
"""

from dataclasses import dataclass

from vlforge.evaluation.files import check_references
from vlforge.evaluation.grounding import parse_box, to_pixels
from vlforge.evaluation.metrics import BOX_METRICS
from vlforge.formats.sample import Sample
from vlforge.formats.segments import IMAGE_SLOT
from vlforge.shards.imageio import open_image

BOX_OPEN = "<box>"


@dataclass
class EvalCase:
    key: str
    benchmark: str
    task: str
    prompt: str  # with one `<img></img>` slot per image, as in the sample
    text: str  # the prompt after its image slots: generate() puts `<img></img>` per image before it
    images: list[bytes]
    references: list
    image_size: tuple[int, int] | None


def split_prompt(sample: Sample) -> tuple[str, str]:
    """(prompt, target): the text before the first supervised segment, and that segment."""
    for i, segment in enumerate(sample.segments):
        if segment.train:
            prompt = "".join(s.text for s in sample.segments[:i])
            target = segment.text
            if target.startswith(BOX_OPEN):
                return prompt + BOX_OPEN, target[len(BOX_OPEN):]
            return prompt, target
    raise ValueError(f"sample {sample.key}: no supervised segment, nothing to predict")


def text_after_images(sample: Sample, prompt: str) -> str:
    """The prompt without its leading image slots; images elsewhere in the prompt cannot be generated from."""
    head = IMAGE_SLOT * len(sample.images)
    text = prompt.removeprefix(head)
    if len(text) != len(prompt) - len(head) or IMAGE_SLOT in text:
        raise ValueError(f"sample {sample.key}: its {len(sample.images)} images must open the prompt "
                         f"(generation puts them first), got {prompt[:80]!r}")
    return text


def _image_size(sample: Sample) -> tuple[int, int]:
    sizes = sample.meta.get("sizes")
    if isinstance(sizes, list) and sizes and isinstance(sizes[0], list) and len(sizes[0]) == 2:
        return int(sizes[0][0]), int(sizes[0][1])
    if not sample.images:
        raise ValueError(f"sample {sample.key}: grounding needs an image")
    with open_image(sample.images[0]) as im:
        return im.size


def _references(sample: Sample, target: str, metric: str, size: tuple[int, int] | None) -> list:
    """meta["references"] when the renderer stored them (all human answers, all captions, pixel boxes);
    otherwise the sample's own answer (for a box: its grid coordinates mapped back to pixels)."""
    if "references" in sample.meta:
        try:
            return check_references(sample.meta["references"], metric)
        except ValueError as exc:
            raise ValueError(f"sample {sample.key}: meta {exc}") from None
    if metric in BOX_METRICS:
        box = parse_box(target)
        if box is None or size is None:
            raise ValueError(f"sample {sample.key} ({sample.task}): its answer {target!r} holds no box to compare "
                             f"with; metric {metric} needs grounding samples")
        return [list(to_pixels(box, *size))]
    return [target.strip()]


def case_from_sample(sample: Sample, metric: str) -> EvalCase:
    prompt, target = split_prompt(sample)
    size = _image_size(sample) if metric in BOX_METRICS else None
    return EvalCase(sample.key, sample.source or "eval", sample.task, prompt, text_after_images(sample, prompt),
                    sample.images, _references(sample, target, metric, size), size)
