"""VQAv2: questions JSON + annotations JSON, answered with the most common of the ten human answers.

Layout: `v2_OpenEnded_mscoco_train2014_questions.json` {"data_subtype": "train2014", "questions":
[{"image_id", "question", "question_id"}]} and `v2_mscoco_train2014_annotations.json` {"annotations":
[{"question_id", "image_id", "multiple_choice_answer", "answers": [{"answer", "answer_confidence",
"answer_id"}]}]}; images `train2014/COCO_train2014_{image_id:012d}.jpg`.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import Item, existing_dir, expect, key, load_json, most_common
from vlforge.sources.annotations.options import AdapterOptions

TASKS = ("vqa",)


class Options(AdapterOptions):
    adapter: Literal["vqav2"]
    questions: Path
    annotations: Path
    images: Path
    file_pattern: str = "COCO_{data_subtype}_{image_id:012d}.jpg"


def scan(options: Options, task: str) -> Iterator[Item]:
    images = existing_dir(options.images, "images")
    qwhere, awhere = str(options.questions), str(options.annotations)
    questions = expect(load_json(options.questions, "questions"), dict, qwhere)
    annotations = expect(load_json(options.annotations, "annotations"), dict, awhere)
    subtype = questions.get("data_subtype", "train2014")
    answers = {}
    for i, ann in enumerate(expect(key(annotations, "annotations", awhere), list, f"{awhere}: annotations")):
        given = [a.get("answer") for a in ann.get("answers", []) if isinstance(a, dict)]
        answers[key(ann, "question_id", f"{awhere}: annotations[{i}]")] = most_common(
            given, ann.get("multiple_choice_answer"))
    for i, q in enumerate(expect(key(questions, "questions", qwhere), list, f"{qwhere}: questions")):
        where = f"{qwhere}: questions[{i}]"
        qid, image_id = key(q, "question_id", where), key(q, "image_id", where)
        path = str(images / options.file_pattern.format(data_subtype=subtype, image_id=image_id))
        record = {"image": path, "question": q.get("question"), "answer": answers.get(qid)}
        yield Item(f"vqav2:{qid}", record, [path])
