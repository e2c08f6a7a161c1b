"""Greedy generation over evaluation samples, scored per benchmark (the sample's `source`) with one metric.

The model side is a function `generate(images, texts, max_new_tokens) -> answers` that puts each sample's
images first and its prompt text after them (vlforge.training.generate.generate); `vlforge eval` binds it to a
trained checkpoint. Scoring is `score_items`, the code `vlforge score` runs.
"""

import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

from PIL import Image

from vlforge.evaluation.cases import EvalCase, case_from_sample
from vlforge.evaluation.metrics import Item, score_items
from vlforge.evaluation.output import Scored
from vlforge.formats.sample import Sample
from vlforge.shards.imageio import open_image, to_rgb

# Qwen-VL eval_mm's max_new_tokens per benchmark family
MAX_NEW_TOKENS = {"vqa": 10, "exact": 10, "choice": 10, "anls": 100, "relaxed": 100, "cider": 30, "grounding": 28}

GenerateFn = Callable[[list[list[Image.Image]], list[str], int], list[str]]


def decode_images(case: EvalCase) -> list[Image.Image]:
    images = []
    for i, data in enumerate(case.images):
        try:
            with open_image(data) as im:
                images.append(to_rgb(im))
        except (OSError, ValueError) as exc:
            raise ValueError(f"sample {case.key}: image {i} does not decode ({exc})") from exc
    return images


def _batches(cases: Iterable[EvalCase], size: int) -> Iterator[list[EvalCase]]:
    it = iter(cases)
    while batch := list(islice(it, size)):
        yield batch


def evaluate(samples: Iterable[Sample], generate: GenerateFn, metric: str, *, batch_size: int = 8,
             max_new_tokens: int | None = None, limit: int | None = None) -> list[Scored]:
    """Predict every sample (up to `limit`) in batches and score each benchmark on its own."""
    if batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {batch_size}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens must be at least 1, got {max_new_tokens}")
    budget = max_new_tokens or MAX_NEW_TOKENS[metric]
    cases = (case_from_sample(sample, metric) for sample in islice(samples, limit))
    by_benchmark: dict[str, tuple[list[Item], dict[str, list]]] = {}
    done = 0
    for batch in _batches(cases, batch_size):
        predictions = generate([decode_images(c) for c in batch], [c.text for c in batch], budget)
        if len(predictions) != len(batch):
            raise RuntimeError(f"generate returned {len(predictions)} texts for {len(batch)} prompts")
        for case, prediction in zip(batch, predictions, strict=True):
            items, columns = by_benchmark.setdefault(case.benchmark, ([], {"task": [], "prompt": []}))
            items.append(Item(case.key, prediction.strip(), case.references, case.image_size))
            columns["task"].append(case.task)
            columns["prompt"].append(case.prompt)
        done += len(batch)
        print(f"eval: {done} samples", file=sys.stderr, flush=True)
    if not by_benchmark:
        raise ValueError("no evaluation samples in the given shards")
    return [Scored(name, score_items(metric, items), items, columns)
            for name, (items, columns) in sorted(by_benchmark.items())]
