"""GRIT-20M: captions with grounded noun chunks (or referring expressions), read from img2dataset shards.

GRIT ships URLs, not images. Download its parquet files with img2dataset and carry the spans through:
`img2dataset --url_list grit-20m --input_format parquet --url_col url --caption_col caption
--output_format webdataset --save_additional_columns '["id","noun_chunks","ref_exps"]' ...`
Each sample is then `KEY.jpg`, `KEY.txt` and `KEY.json` holding `noun_chunks` / `ref_exps`:
[[start, end, x1, y1, x2, y2, score]], character offsets into the caption and boxes normalised to [0, 1]
(resize-proof, so the boxes are measured in a 1 x 1 frame). Chunks with the same span share one `<ref>`;
a span overlapping an earlier one is left out (Qwen-VL's markup cannot nest).
"""

from typing import Literal

from pydantic import Field

from vlforge.sources.annotations.base import Item
from vlforge.sources.annotations.options import AdapterOptions
from vlforge.sources.annotations.tars import read_samples, tar_paths

TASKS = ("grounding",)


class Options(AdapterOptions):
    adapter: Literal["grit"]
    paths: list[str]
    spans: Literal["noun_chunks", "ref_exps"] = "noun_chunks"
    min_score: float = Field(default=0.0, ge=0, le=1)


def grit_refs(chunks: object, min_score: float = 0.0) -> list[dict]:
    """GRIT's [[start, end, x1, y1, x2, y2, score]] as render's refs: one per span, boxes grouped, no overlaps."""
    by_span: dict[tuple, list] = {}
    for chunk in chunks if isinstance(chunks, list) else []:
        if not isinstance(chunk, list) or len(chunk) < 6:
            continue
        score = chunk[6] if len(chunk) > 6 else 1.0
        if isinstance(score, (int, float)) and score < min_score:
            continue
        by_span.setdefault((int(chunk[0]), int(chunk[1])), []).append(list(chunk[2:6]))
    refs, end = [], -1
    for (start, stop), boxes in sorted(by_span.items()):
        if start >= end:
            refs.append({"span": [start, stop], "boxes": boxes})
            end = stop
    return refs


def scan(options: Options, task: str) -> list[Item]:
    items = []
    for tar in tar_paths(options.paths, "paths"):
        for sample_key, texts, images in read_samples(tar):
            meta = texts.get("json") if isinstance(texts.get("json"), dict) else {}
            caption = meta.get("caption") if isinstance(meta.get("caption"), str) else texts.get("txt")
            record = {"image": images[0].member if images else "", "caption": caption,
                      "refs": grit_refs(meta.get(options.spans), options.min_score)}
            items.append(Item(f"grit:{meta.get('id', sample_key)}", record, images[:1], frame=(1.0, 1.0)))
    return items
