"""Every bad input is a FieldError that names its field (the render pipeline adds the line number)."""

import math
import pickle

import pytest

from vlforge.formats.errors import FieldError
from vlforge.formats.tasks import image_fields, ocr_segments, render

BOX = [10, 10, 20, 20]
QUAD = [[0, 0], [10, 0], [10, 10], [0, 10]]
CAPTION = {"image": "a.jpg", "caption": "a dog"}
GROUNDING = {"image": "a.jpg", "caption": "Woman and her dog", "refs": [{"span": [0, 5], "boxes": [BOX]}]}


def grounding(**changes):
    return {**GROUNDING, **changes}


def refs(*items):
    return grounding(refs=list(items))


BAD = [
    # (task, record, field)
    ("dance", CAPTION, "task"),
    ("caption", ["not", "an", "object"], "record"),
    ("caption", {"caption": "a dog"}, "image"),
    ("caption", {"image": 7, "caption": "a dog"}, "image"),
    ("caption", {"image": " ", "caption": "a dog"}, "image"),
    ("caption", {"image": "a.jpg"}, "caption"),
    ("caption", {"image": "a.jpg", "caption": 5}, "caption"),
    ("caption", {"image": "a.jpg", "caption": "  "}, "caption"),
    ("caption", {"image": "a.jpg", "caption": "a <img></img> trick"}, "caption"),
    ("caption", {"image": "a.jpg", "caption": "end<|endoftext|>"}, "caption"),
    ("caption", {**CAPTION, "lang": "fr"}, "lang"),
    ("caption_stage1", {**CAPTION, "lang": "fr"}, "lang"),
    ("caption_stage1", {"image": "a.jpg", "caption": None}, "caption"),
    ("vqa", {"image": "a.jpg", "question": "Why?"}, "answer"),
    ("vqa", {"image": "a.jpg", "question": ["Why?"], "answer": "no"}, "question"),
    ("vqa", {"image": "a.jpg", "question": "Why?", "answer": "<box>(1,2),(3,4)</box>"}, "answer"),
    ("grounding", grounding(refs=None), "refs"),
    ("grounding", {"image": "a.jpg", "caption": "x"}, "refs"),
    ("grounding", refs(), "refs"),
    ("grounding", grounding(lang="de"), "lang"),
    ("grounding", refs({"span": [0, 5], "boxes": [BOX]}, "her dog"), "refs[1]"),
    ("grounding", refs({"span": [0, 5], "boxes": [BOX]}, {"boxes": [BOX]}), "refs[1].span"),
    ("grounding", refs({"span": [10, 18], "boxes": [BOX]}), "refs[0].span"),  # caption has 17 characters
    ("grounding", refs({"span": [-1, 3], "boxes": [BOX]}), "refs[0].span"),
    ("grounding", refs({"span": [5, 3], "boxes": [BOX]}), "refs[0].span"),
    ("grounding", refs({"span": [3, 3], "boxes": [BOX]}), "refs[0].span"),
    ("grounding", refs({"span": ["0", 5], "boxes": [BOX]}), "refs[0].span"),
    ("grounding", refs({"span": [0, True], "boxes": [BOX]}), "refs[0].span"),
    ("grounding", refs({"span": [0, 5.0], "boxes": [BOX]}), "refs[0].span"),
    ("grounding", refs({"span": [0, 5, 6], "boxes": [BOX]}), "refs[0].span"),
    ("grounding", refs({"span": [6, 9], "boxes": [BOX]}, {"span": [0, 7], "boxes": [BOX]}), "refs[0].span"),
    ("grounding", refs({"span": [0, 7], "boxes": [BOX]}, {"span": [6, 9], "boxes": [BOX]}), "refs[1].span"),
    ("grounding", refs({"span": [0, 5]}), "refs[0].boxes"),
    ("grounding", refs({"span": [0, 5], "boxes": []}), "refs[0].boxes"),
    ("grounding", refs({"span": [0, 5], "boxes": [BOX, [30, 10, 20, 20]]}), "refs[0].boxes[1]"),
    ("grounding", refs({"span": [0, 5], "boxes": [[10, 10, math.nan, 20]]}), "refs[0].boxes[0][2]"),
    ("grounding", refs({"span": [0, 5], "boxes": [[10, -math.inf, 20, 20]]}), "refs[0].boxes[0][1]"),
    ("grounding", refs({"span": [0, 5], "boxes": [[10, 10, 20, 10**400]]}), "refs[0].boxes[0][3]"),
    ("grounding", refs({"span": [0, 5], "boxes": [["10", 10, 20, 20]]}), "refs[0].boxes[0][0]"),
    ("grounding", refs({"span": [0, 5], "boxes": [[10, 10, 20]]}), "refs[0].boxes[0]"),
    ("grounding", grounding(box_format="cxcywh"), "box_format"),
    ("ref_grounding", {"image": "a.jpg", "expression": "the dog"}, "box"),
    ("ref_grounding", {"image": "a.jpg", "box": BOX}, "expression"),
    ("ref_grounding", {"image": "a.jpg", "expression": "the dog", "box": [10, 30, 20, 20]}, "box"),
    ("ref_grounding", {"image": "a.jpg", "expression": "the dog", "box": [math.nan, 0, 1, 1]}, "box[0]"),
    ("ref_grounding", {"image": "a.jpg", "expression": "the dog", "box": [0, 0, 1, True]}, "box[3]"),
    ("ref_grounding", {"image": "a.jpg", "expression": "d", "box": [0, 0, -1, 5], "box_format": "xywh"},
     "box"),
    ("ref_grounding", {"image": "a.jpg", "expression": "<ref>x</ref>", "box": BOX}, "expression"),
    ("grounded_caption", {"image": "a.jpg", "box": [0, 0, 1, math.inf], "caption": "a dog"}, "box[3]"),
    ("grounded_caption", {"image": "a.jpg", "box": "0,0,1,1", "caption": "a dog"}, "box"),
    ("grounded_caption", {"image": "a.jpg", "box": BOX}, "caption"),
    ("ocr", {"image": "a.jpg"}, "lines"),
    ("ocr", {"image": "a.jpg", "lines": []}, "lines"),
    ("ocr", {"image": "a.jpg", "lines": ["Hello"]}, "lines[0]"),
    ("ocr", {"image": "a.jpg", "lines": [{"text": "a", "quad": QUAD}, {"quad": QUAD}]}, "lines[1].text"),
    ("ocr", {"image": "a.jpg", "lines": [{"text": "a", "quad": QUAD[:3]}]}, "lines[0].quad"),
    ("ocr", {"image": "a.jpg", "lines": [{"text": "a"}]}, "lines[0].quad"),
    ("ocr", {"image": "a.jpg", "lines": [{"text": "a", "quad": [[0, 0], [1, 0], [1, math.nan], [0, 1]]}]},
     "lines[0].quad[2][1]"),
    ("ocr", {"image": "a.jpg", "lines": [{"text": "a", "quad": [[0, 0], [1, 0], [1], [0, 1]]}]},
     "lines[0].quad[2]"),
    ("text", {}, "text"),
    ("text", {"text": ""}, "text"),
    ("text", {"text": b"bytes"}, "text"),
]


@pytest.mark.parametrize(("task", "record", "field"), BAD)
def test_bad_input_names_the_field(task, record, field):
    with pytest.raises(FieldError) as raised:
        image_fields(task, record)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


@pytest.mark.parametrize(("task", "record", "field"), [b for b in BAD if b[0] not in ("dance", "text")])
def test_render_rejects_the_same_inputs(task, record, field):
    with pytest.raises(FieldError) as raised:
        render(task, record, [(640, 480)])
    assert raised.value.field == field


def test_messages_explain_the_problem():
    with pytest.raises(FieldError, match=r"refs\[0\].span: \[10, 18\] is outside the caption"):
        image_fields("grounding", refs({"span": [10, 18], "boxes": [BOX]}))
    with pytest.raises(FieldError, match=r"refs\[1\].span: overlaps refs\[0\].span"):
        image_fields("grounding", refs({"span": [0, 7], "boxes": [BOX]}, {"span": [6, 9], "boxes": [BOX]}))
    with pytest.raises(FieldError, match=r"box: inverted box"):
        image_fields("ref_grounding", {"image": "a.jpg", "expression": "d", "box": [10, 30, 20, 20]})
    with pytest.raises(FieldError, match="unknown task 'dance'"):
        image_fields("dance", CAPTION)


def test_huge_values_are_shortened_in_messages():
    with pytest.raises(FieldError) as raised:
        image_fields("caption", {"image": "a.jpg", "caption": ["x" * 10_000]})
    assert len(str(raised.value)) < 200


def test_ocr_segments_rejects_bad_lines():
    with pytest.raises(FieldError) as raised:
        ocr_segments([{"text": "a", "quad": [[0, 0], [1, 0], [1, 1]]}], 100, 100)
    assert raised.value.field == "lines[0].quad"


def test_field_error_survives_pickling():
    # Ray sends exceptions between processes by pickling them.
    error = pickle.loads(pickle.dumps(FieldError("refs[1].span", "overlaps refs[0].span")))
    assert (error.field, error.message, str(error)) == (
        "refs[1].span", "overlaps refs[0].span", "refs[1].span: overlaps refs[0].span"
    )
    assert isinstance(error, ValueError)
