"""GQA: `train_balanced_questions.json` {question_id: {"imageId", "question", "answer", "fullAnswer", ...}}.

Images `images/{imageId}.jpg`. The short `answer` is used, as in the GQA evaluation.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import Item, existing_dir, expect, key, load_json
from vlforge.sources.annotations.options import AdapterOptions

TASKS = ("vqa",)


class Options(AdapterOptions):
    adapter: Literal["gqa"]
    questions: Path
    images: Path
    answer: Literal["answer", "fullAnswer"] = "answer"


def scan(options: Options, task: str) -> Iterator[Item]:
    images = existing_dir(options.images, "images")
    where = str(options.questions)
    data = expect(load_json(options.questions, "questions"), dict, where)
    for qid, q in data.items():
        path = str(images / f"{key(q, 'imageId', f'{where}: {qid}')}.jpg")
        record = {"image": path, "question": q.get("question"), "answer": q.get(options.answer)}
        yield Item(f"gqa:{qid}", record, [path])
