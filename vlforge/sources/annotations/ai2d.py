"""AI2D (diagrams, multiple choice): `questions/{imageName}.json` per image, images `images/{imageName}`.

Layout of each question file: {"imageName": "0.png", "questions": {QUESTION TEXT: {"abcLabel", "answerTexts":
[4 options], "correctAnswer": index into answerTexts, "questionId"}}}. Rendered as a VQA sample the way
Qwen-VL's multiple-choice evaluation prompts (eval_mm/evaluate_multiple_choice.py): the options lettered in
the question, `QUESTION\\nOptions: A. x\\nB. y\\n...`, and the answer its letter (`answer: text` gives the
option's text instead). `exclude_ids` names a file of image ids to leave out, one a line (AI2D's
`ai2d_test_ids.csv`), so the test diagrams never reach training.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import Item, SourceError, existing_dir, existing_file, expect, key, load_json
from vlforge.sources.annotations.options import AdapterOptions

TASKS = ("vqa",)
LETTERS = "ABCDEFGH"


class Options(AdapterOptions):
    adapter: Literal["ai2d"]
    questions: Path  # the release's questions/ folder
    images: Path  # the release's images/ folder
    answer: Literal["letter", "text"] = "letter"
    exclude_ids: Path | None = None


def _excluded(path: Path | None) -> set[str]:
    if path is None:
        return set()
    lines = existing_file(path, "exclude_ids").read_text(encoding="utf-8").splitlines()
    return {Path(line.strip().split(",")[0]).stem for line in lines if line.strip()}


def _options_text(options: list) -> str | None:
    if not options or len(options) > len(LETTERS) or not all(isinstance(o, str) for o in options):
        return None
    return "\n".join(f"{LETTERS[i]}. {text}" for i, text in enumerate(options))


def _answer(entry: dict, choice: str) -> str | None:
    options, correct = entry.get("answerTexts"), entry.get("correctAnswer")
    if not isinstance(options, list) or not isinstance(correct, int) or not 0 <= correct < len(options):
        return None  # no answer: the sample is dropped as bad_field:answer when rendered
    return LETTERS[correct] if choice == "letter" else options[correct]


def scan(options: Options, task: str) -> Iterator[Item]:
    folder = existing_dir(options.questions, "questions")
    images = existing_dir(options.images, "images")
    excluded = _excluded(options.exclude_ids)
    files = sorted(folder.glob("*.json"))
    if not files:
        raise SourceError(f"questions: no question files (*.json) in {folder}")
    for path in files:
        where = str(path)
        data = expect(load_json(path, "questions"), dict, where)
        name = key(data, "imageName", where)
        if Path(name).stem in excluded:
            continue
        image = str(images / name)
        for text, entry in expect(key(data, "questions", where), dict, f"{where}: questions").items():
            entry = expect(entry, dict, f"{where}: questions[{text!r}]")
            choices = _options_text(entry.get("answerTexts"))
            question = f"{text}\nOptions: {choices}" if choices else None
            uid = f"ai2d:{entry.get('questionId', f'{name}-{text}')}"
            yield Item(uid, {"image": image, "question": question, "answer": _answer(entry, options.answer)},
                       [image])
