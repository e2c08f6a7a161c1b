"""GQA: `train_balanced_questions.json` {question_id: {"imageId", "question", "answer", "fullAnswer", ...}}.

Images `images/{imageId}.jpg`. The short `answer` is used, as in the GQA evaluation.
"""

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


def scan(options: Options, task: str) -> list[Item]:
    images = existing_dir(options.images, "images")
    where = str(options.questions)
    data = expect(load_json(options.questions, "questions"), dict, where)
    items = []
    for qid, q in data.items():
        path = str(images / f"{key(q, 'imageId', f'{where}: {qid}')}.jpg")
        record = {"image": path, "question": q.get("question"), "answer": q.get(options.answer)}
        items.append(Item(f"gqa:{qid}", record, [path]))
    return items
