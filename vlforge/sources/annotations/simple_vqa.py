"""Text-heavy VQA sets whose layout is one JSON file of questions: TextVQA, DocVQA, ChartQA, OCR-VQA.

- textvqa: `TextVQA_0.5.1_train.json` {"data": [{"question_id", "question", "image_id", "answers": [10]}]},
  images `train_images/{image_id}.jpg`; the most common answer.
- docvqa: `train_v1.0.json` {"data": [{"questionId", "question", "image": "documents/x.png", "answers"}]},
  images relative to the split folder; the first answer.
- chartqa: `train_augmented.json` / `train_human.json` [{"imgname", "query", "label"}], images `png/{imgname}`.
- ocrvqa: `dataset.json` {id: {"imageURL", "questions", "answers", "split"}} (split 1 train, 2 val, 3 test),
  images `images/{id}{extension of imageURL}` as its download script saves them; every question a sample.
AI2D (multiple choice, one JSON per image) has its own adapter, `ai2d`.
"""

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import Item, existing_dir, expect, key, load_json, most_common
from vlforge.sources.annotations.options import AdapterOptions

TASKS = ("vqa",)


class Options(AdapterOptions):
    adapter: Literal["simple_vqa"]
    layout: Literal["textvqa", "docvqa", "chartqa", "ocrvqa"]
    annotations: Path
    images: Path
    splits: tuple[int, ...] = (1,)  # ocrvqa only


def _textvqa(data: object, where: str) -> list[tuple[str, str, str, object]]:
    rows = expect(key(expect(data, dict, where), "data", where), list, f"{where}: data")
    return [(str(key(q, "question_id", f"{where}: data[{i}]")), f"{key(q, 'image_id', where)}.jpg",
             q.get("question"), most_common(q.get("answers") or [])) for i, q in enumerate(rows)]


def _docvqa(data: object, where: str) -> list[tuple[str, str, str, object]]:
    rows = expect(key(expect(data, dict, where), "data", where), list, f"{where}: data")
    return [(str(key(q, "questionId", f"{where}: data[{i}]")), key(q, "image", f"{where}: data[{i}]"),
             q.get("question"), (q.get("answers") or [None])[0]) for i, q in enumerate(rows)]


def _chartqa(data: object, where: str) -> list[tuple[str, str, str, object]]:
    rows = expect(data, list, where)
    return [(str(i), key(q, "imgname", f"{where}: [{i}]"), q.get("query"), q.get("label"))
            for i, q in enumerate(rows)]


def _ocrvqa(data: object, where: str, splits: tuple[int, ...]) -> list[tuple[str, str, str, object]]:
    rows = []
    for book, entry in expect(data, dict, where).items():
        if entry.get("split") not in splits:
            continue
        ext = os.path.splitext(key(entry, "imageURL", f"{where}: {book}"))[1] or ".jpg"
        pairs = zip(key(entry, "questions", f"{where}: {book}"), key(entry, "answers", f"{where}: {book}"),
                    strict=False)
        rows += [(f"{book}-{j}", f"{book}{ext}", q, a) for j, (q, a) in enumerate(pairs)]
    return rows


def scan(options: Options, task: str) -> Iterator[Item]:
    images = existing_dir(options.images, "images")
    where = str(options.annotations)
    data = load_json(options.annotations, "annotations")
    if options.layout == "ocrvqa":
        rows = _ocrvqa(data, where, options.splits)
    else:
        rows = {"textvqa": _textvqa, "docvqa": _docvqa, "chartqa": _chartqa}[options.layout](data, where)
    for uid, rel, question, answer in rows:
        path = str(images / rel)
        yield Item(f"{options.layout}:{uid}", {"image": path, "question": question, "answer": answer},
                         [path])
