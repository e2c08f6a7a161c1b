"""The Qwen-VL task templates: one input record -> segments (stage-1 caption, the stage-2 tasks, chat)."""

from collections.abc import Callable

from vlforge.formats import chat
from vlforge.formats.coords import box_text, pixel_box, quad_text
from vlforge.formats.errors import FieldError, describe
from vlforge.formats.grounding import grounded_answer
from vlforge.formats.record import box_format, image_path, language, plain_text, require
from vlforge.formats.segments import IMAGE_SLOT, join_text, segment

__all__ = ["TASKS", "image_fields", "join_text", "ocr_segments", "references", "render"]

_NOMINAL_SIZE = (1000, 1000)  # validation renders before the image is opened; the numbers are discarded


def _caption_stage1(record: dict, width: int, height: int) -> list[dict]:
    language(record)
    return [segment(IMAGE_SLOT, False), segment(plain_text(record, "caption"), True)]


def _caption(record: dict, width: int, height: int) -> list[dict]:
    return [
        segment(IMAGE_SLOT, False),
        segment(f"Generate the caption in {language(record)}:", False),
        segment(" " + plain_text(record, "caption"), True),
    ]


def _vqa(record: dict, width: int, height: int) -> list[dict]:
    return [
        segment(IMAGE_SLOT, False),
        segment(plain_text(record, "question") + " Answer:", False),
        segment(" " + plain_text(record, "answer"), True),
    ]


def _grounding(record: dict, width: int, height: int) -> list[dict]:
    prompt = f"Generate the caption in {language(record)} with grounding:"
    caption = plain_text(record, "caption")
    refs = require(record, "refs", list)
    return [
        segment(IMAGE_SLOT, False),
        segment(prompt, False),
        segment(grounded_answer(caption, refs, width, height, box_format(record)), True),
    ]


def _ref_grounding(record: dict, width: int, height: int) -> list[dict]:
    return [
        segment(IMAGE_SLOT, False),
        segment(f"<ref>{plain_text(record, 'expression')}</ref>", False),
        segment(box_text(record.get("box"), width, height, box_format(record)), True),
    ]


def _grounded_caption(record: dict, width: int, height: int) -> list[dict]:
    box = box_text(record.get("box"), width, height, box_format(record))
    return [
        segment(IMAGE_SLOT, False),
        segment(f"<ref>This</ref>{box} is", False),
        segment(" " + plain_text(record, "caption"), True),
    ]


def ocr_segments(lines: list[dict], width: int, height: int) -> list[dict]:
    """OCR with grounding: every line, in the given reading order, as `<ref>text</ref><quad>..</quad>`.

    lines: [{"text": str, "quad": [[x, y]] * 4 in pixels, TL, TR, BR, BL}].
    """
    if not isinstance(lines, list) or not lines:
        raise FieldError("lines", f"must be a non-empty list, got {describe(lines)}")
    answer = []
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            raise FieldError(f"lines[{i}]", f"must be an object, got {describe(line)}")
        text = plain_text(line, "text", f"lines[{i}].text")
        answer.append(f"<ref>{text}</ref>{quad_text(line.get('quad'), width, height, f'lines[{i}].quad')}")
    return [segment(IMAGE_SLOT, False), segment("OCR with grounding:", False), segment("".join(answer), True)]


def _ocr(record: dict, width: int, height: int) -> list[dict]:
    return ocr_segments(require(record, "lines", list), width, height)


_IMAGE_TASKS: dict[str, Callable[[dict, int, int], list[dict]]] = {
    "caption_stage1": _caption_stage1,
    "caption": _caption,
    "vqa": _vqa,
    "grounding": _grounding,
    "ref_grounding": _ref_grounding,
    "grounded_caption": _grounded_caption,
    "ocr": _ocr,
}
TASKS = (*_IMAGE_TASKS, "text", "chat")


def _image_paths(task: str, record: dict) -> list[str]:
    if task not in TASKS:
        raise FieldError("task", f"unknown task {describe(task)}; expected one of {', '.join(TASKS)}")
    if not isinstance(record, dict):
        raise FieldError("record", f"must be a JSON object, got {describe(record)}")
    if task == "chat":
        return chat.image_paths(chat.to_conversation(record))
    if task == "text":
        return []
    return [image_path(record)]


def references(task: str, record: dict) -> list | None:
    """The record's optional evaluation `references` (every human answer or caption; for ref_grounding, pixel
    boxes in the record's box_format, returned as [x1, y1, x2, y2]), or None; `vlforge eval` scores against them."""
    if "references" not in record:
        return None
    refs = require(record, "references", list)
    if not refs:
        raise FieldError("references", "must not be empty")
    if task == "ref_grounding":
        return [list(pixel_box(box, box_format(record), f"references[{i}]")) for i, box in enumerate(refs)]
    if task not in ("caption", "vqa", "grounded_caption"):
        raise FieldError("references", f"only caption, vqa, ref_grounding and grounded_caption records take "
                                       f"references, not {task}")
    for i, ref in enumerate(refs):
        if not isinstance(ref, str) or not ref.strip():
            raise FieldError(f"references[{i}]", f"must be a non-empty string, got {describe(ref)}")
    return refs


def image_fields(task: str, record: dict) -> list[str]:
    """The image paths a record refers to, in order, after checking every field of the record.

    Lets the render pipeline reject a bad record (FieldError naming the field) before it reads any image.
    """
    paths = _image_paths(task, record)
    render(task, record, [_NOMINAL_SIZE] * len(paths))
    references(task, record)
    return paths


def render(task: str, record: dict, sizes: list[tuple[int, int]]) -> list[dict]:
    """The record as segments; sizes holds (width, height) of each image image_fields returned, in order."""
    paths = _image_paths(task, record)
    if len(sizes) != len(paths):
        raise ValueError(f"{task} record has {len(paths)} images but {len(sizes)} sizes were given")
    if task == "chat":
        return chat.chat_segments(chat.to_conversation(record))
    if task == "text":
        return [segment(plain_text(record, "text"), True)]
    width, height = sizes[0]
    return _IMAGE_TASKS[task](record, width, height)
