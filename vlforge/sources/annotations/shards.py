"""WebDataset shards as sources: vlforge's cleaned shards and img2dataset's (captions), synthdog's (OCR).

- clean / img2dataset: `KEY.jpg` + `KEY.txt` (the caption) + `KEY.json` (`lang` when vlforge wrote it).
- synthdog: `KEY.jpg` + `KEY.json` with `lines: [{"text", "quad"}]` in image pixels and `lang`.
A sample's own `lang` (en/zh) is used when the source's language is `auto`.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import Item
from vlforge.sources.annotations.options import AdapterOptions
from vlforge.sources.annotations.tars import read_samples, tar_paths

TASKS = ("caption", "caption_stage1", "ocr")


class Options(AdapterOptions):
    adapter: Literal["shards"]
    kind: Literal["clean", "img2dataset", "synthdog"]
    paths: list[str]


def _record(kind: str, texts: dict, image: str) -> dict:
    meta = texts.get("json") if isinstance(texts.get("json"), dict) else {}
    record = {"image": image}
    if meta.get("lang") in ("en", "zh"):
        record["lang"] = meta["lang"]
    if kind == "synthdog":
        record["lines"] = meta.get("lines")
    else:
        record["caption"] = texts.get("txt", meta.get("caption"))
    return record


def scan(options: Options, task: str) -> Iterator[Item]:
    for tar in tar_paths(options.paths, "paths"):
        for sample_key, texts, images in read_samples(tar):
            image = images[0].member if images else ""
            yield Item(f"{Path(tar).stem}/{sample_key}", _record(options.kind, texts, image), images[:1])
