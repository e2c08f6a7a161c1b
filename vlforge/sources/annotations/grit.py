"""GRIT-20M: captions with grounded noun chunks and referring expressions, read from img2dataset shards.

GRIT ships URLs, not images. Download its parquet files with img2dataset and carry the spans through:
`img2dataset --url_list grit-20m --input_format parquet --url_col url --caption_col caption
--output_format webdataset --save_additional_columns '["id","noun_chunks","ref_exps"]' ...`
Each sample is then `KEY.jpg`, `KEY.txt` and `KEY.json` holding `noun_chunks` / `ref_exps`:
[[start, end, x1, y1, x2, y2, score]], character offsets into the caption and boxes normalised to [0, 1]
(resize-proof, so the boxes are measured in a 1 x 1 frame).

- `grounding`: the caption with every span marked (`noun_chunks` by default). Chunks with the same span
  share one `<ref>`; a span overlapping an earlier one is left out (Qwen-VL's markup cannot nest).
- `ref_grounding` (expression -> box) and `grounded_caption` (box -> expression): one sample per span
  (`ref_exps` by default). A span with several boxes names no single object: its sample is kept as a
  manifest row dropped with `ambiguous_span`.
`spans` picks the column for any task; `min_score` drops boxes GRIT scored lower.
"""

from collections.abc import Iterator
from typing import Literal

from pydantic import Field

from vlforge.sources.annotations.base import Item
from vlforge.sources.annotations.options import AdapterOptions
from vlforge.sources.annotations.tars import read_samples, tar_paths

TASKS = ("grounding", "ref_grounding", "grounded_caption")
DEFAULT_SPANS = {"grounding": "noun_chunks", "ref_grounding": "ref_exps", "grounded_caption": "ref_exps"}
_TEXT = {"ref_grounding": "expression", "grounded_caption": "caption"}


class Options(AdapterOptions):
    adapter: Literal["grit"]
    paths: list[str]
    spans: Literal["noun_chunks", "ref_exps"] | None = None  # default by task: DEFAULT_SPANS
    min_score: float = Field(default=0.0, ge=0, le=1)


def spans_by_position(chunks: object, min_score: float = 0.0) -> dict[tuple[int, int], list]:
    """GRIT's [[start, end, x1, y1, x2, y2, score]] as {(start, end): [boxes]}, in span order."""
    by_span: dict[tuple, list] = {}
    for chunk in chunks if isinstance(chunks, list) else []:
        if not isinstance(chunk, list) or len(chunk) < 6:
            continue
        score = chunk[6] if len(chunk) > 6 else 1.0
        if isinstance(score, (int, float)) and score < min_score:
            continue
        by_span.setdefault((int(chunk[0]), int(chunk[1])), []).append(list(chunk[2:6]))
    return dict(sorted(by_span.items()))


def grit_refs(chunks: object, min_score: float = 0.0) -> list[dict]:
    """GRIT's spans as render's refs: one per span, boxes grouped, no overlaps."""
    refs, end = [], -1
    for (start, stop), boxes in spans_by_position(chunks, min_score).items():
        if start >= end:
            refs.append({"span": [start, stop], "boxes": boxes})
            end = stop
    return refs


def _span_items(uid: str, caption: object, image: str, refs: list, spans: dict, task: str) -> Iterator[Item]:
    for k, ((start, stop), boxes) in enumerate(spans.items()):
        text = caption[start:stop].strip() if isinstance(caption, str) else None
        record = {"image": image, _TEXT[task]: text, "box": boxes[0], "box_format": "xyxy"}
        reject = "ambiguous_span" if len(boxes) > 1 else None
        yield Item(f"{uid}:{k}", record, refs, frame=(1.0, 1.0), reject=reject)


def scan(options: Options, task: str) -> Iterator[Item]:
    column = options.spans or DEFAULT_SPANS[task]
    for tar in tar_paths(options.paths, "paths"):
        for sample_key, texts, images in read_samples(tar):
            meta = texts.get("json") if isinstance(texts.get("json"), dict) else {}
            caption = meta.get("caption") if isinstance(meta.get("caption"), str) else texts.get("txt")
            image = images[0].member if images else ""
            uid = f"grit:{meta.get('id', sample_key)}"
            if task == "grounding":
                record = {"image": image, "caption": caption, "refs": grit_refs(meta.get(column), options.min_score)}
                yield Item(uid, record, images[:1], frame=(1.0, 1.0))
            else:
                spans = spans_by_position(meta.get(column), options.min_score)
                yield from _span_items(uid, caption, image, images[:1], spans, task)
