"""Every task template against segments written by hand from the issue's table."""

import subprocess
import sys

import pytest

from vlforge.formats.tasks import TASKS, image_fields, join_text, ocr_segments, render

F, T = False, True
SIZE = [(640, 480)]
# [289,182,468,387] on 640x480: x 289/640*1000=451.56, 468/640*1000=731.25;
#                                y 182/480*1000=379.17, 387/480*1000=806.25
BOX = [289, 182, 468, 387]
BOX_TEXT = "<box>(451,379),(731,806)</box>"
# [100,300,200,479]: x 156.25, 312.5; y 625.0, 997.9
BOX2 = [100, 300, 200, 479]
BOX2_TEXT = "<box>(156,625),(312,997)</box>"


def segs(*pairs):
    return [{"text": text, "train": train} for text, train in pairs]


def test_task_names():
    assert set(TASKS) == {
        "caption_stage1", "caption", "vqa", "grounding", "ref_grounding", "grounded_caption", "ocr", "text",
        "chat",
    }


@pytest.mark.parametrize("lang", [{}, {"lang": "en"}])
def test_caption_stage1_english(lang):
    record = {"image": "a.jpg", "caption": "A dog on a beach.", **lang}
    assert render("caption_stage1", record, SIZE) == segs(("<img></img>", F), ("A dog on a beach.", T))


def test_caption_stage1_chinese():
    record = {"image": "a.jpg", "caption": "海滩上的一只狗", "lang": "zh"}
    assert render("caption_stage1", record, SIZE) == segs(("<img></img>", F), ("海滩上的一只狗", T))


@pytest.mark.parametrize("lang", [{}, {"lang": "en"}])
def test_caption_english(lang):
    record = {"image": "a.jpg", "caption": "A dog on a beach.", **lang}
    assert render("caption", record, SIZE) == segs(
        ("<img></img>", F), ("Generate the caption in English:", F), (" A dog on a beach.", T)
    )


def test_caption_chinese():
    record = {"image": "a.jpg", "caption": "海滩上的一只狗", "lang": "zh"}
    assert render("caption", record, SIZE) == segs(
        ("<img></img>", F), ("Generate the caption in Chinese:", F), (" 海滩上的一只狗", T)
    )


def test_vqa():
    record = {"image": "a.jpg", "question": "What color is the dog?", "answer": "brown"}
    assert render("vqa", record, SIZE) == segs(
        ("<img></img>", F), ("What color is the dog? Answer:", F), (" brown", T)
    )


def test_grounding_matches_released_model_example():
    record = {
        "image": "a.jpg",
        "caption": "Woman and her dog playing on the beach",
        # out of order on purpose: spans are sorted
        "refs": [{"span": [10, 17], "boxes": [BOX2]}, {"span": [0, 5], "boxes": [BOX]}],
    }
    expected = segs(
        ("<img></img>", F),
        ("Generate the caption in English with grounding:", F),
        (
            "<ref> Woman</ref><box>(451,379),(731,806)</box> and<ref> her dog</ref>"
            "<box>(156,625),(312,997)</box> playing on the beach",
            T,
        ),
    )
    segments = render("grounding", record, SIZE)
    assert segments == expected
    example = "grounding:<ref> Woman</ref><box>(451,379),(731,806)</box> and<ref> her dog</ref>"
    assert example in join_text(segments)


def test_grounding_chinese_ref_without_preceding_space_opens_at_span():
    record = {
        "image": "a.jpg",
        "lang": "zh",
        "caption": "女人和她的狗",
        "refs": [{"span": [0, 2], "boxes": [BOX]}, {"span": [3, 6], "boxes": [BOX2]}],
    }
    assert render("grounding", record, SIZE) == segs(
        ("<img></img>", F),
        ("Generate the caption in Chinese with grounding:", F),
        ("<ref> 女人</ref><box>(451,379),(731,806)</box>和<ref>她的狗</ref><box>(156,625),(312,997)</box>",
         T),
    )


def test_grounding_several_boxes_xywh_and_span_after_punctuation():
    record = {
        "image": "a.jpg",
        "caption": "Two dogs (brown) sit.",
        "box_format": "xywh",
        # xywh [289,182,179,205] is xyxy [289,182,468,387]; [100,300,100,179] is [100,300,200,479]
        "refs": [
            {"span": [0, 8], "boxes": [[289, 182, 179, 205], [100, 300, 100, 179]]},
            {"span": [10, 15], "boxes": [[289, 182, 179, 205]]},
        ],
    }
    assert render("grounding", record, SIZE)[2] == {
        "text": "<ref> Two dogs</ref><box>(451,379),(731,806)</box><box>(156,625),(312,997)</box>"
        " (<ref>brown</ref><box>(451,379),(731,806)</box>) sit.",
        "train": T,
    }


def test_grounding_adjacent_spans_keep_the_space_in_the_first():
    refs = [{"span": [0, 4], "boxes": [BOX]}, {"span": [4, 7], "boxes": [BOX2]}]
    record = {"image": "a.jpg", "caption": "red dog", "refs": refs}
    assert render("grounding", record, SIZE)[2]["text"] == (
        "<ref> red </ref><box>(451,379),(731,806)</box><ref>dog</ref><box>(156,625),(312,997)</box>"
    )


def test_ref_grounding():
    record = {"image": "a.jpg", "expression": "the ear on a giraffe", "box": BOX}
    assert render("ref_grounding", record, SIZE) == segs(
        ("<img></img>", F), ("<ref>the ear on a giraffe</ref>", F), (BOX_TEXT, T)
    )


def test_ref_grounding_clamps_boxes_outside_the_image():
    # -10/640 -> 0; 700/640*1000 = 1093 -> 999; 500/480*1000 = 1041 -> 999
    record = {"image": "a.jpg", "expression": "everything", "box": [-10, -5, 700, 500]}
    assert render("ref_grounding", record, SIZE)[2]["text"] == "<box>(0,0),(999,999)</box>"


def test_grounded_caption():
    record = {"image": "a.jpg", "box": BOX, "caption": "a brown dog"}
    assert render("grounded_caption", record, SIZE) == segs(
        ("<img></img>", F), ("<ref>This</ref><box>(451,379),(731,806)</box> is", F), (" a brown dog", T)
    )


def test_grounded_caption_coco_box():
    record = {"image": "a.jpg", "box": [289, 182, 179, 205], "box_format": "xywh", "caption": "a brown dog"}
    prompt = render("grounded_caption", record, SIZE)[1]["text"]
    assert prompt == "<ref>This</ref><box>(451,379),(731,806)</box> is"


OCR_LINES = [
    # x 10/640=15.6, 300/640=468.75; y 20/480=41.7, 60/480=125
    {"text": "Hello", "quad": [[10, 20], [300, 20], [300, 60], [10, 60]]},
    # x 64/640=100, 128/640=200; y 96/480=200, 150/480=312.5
    {"text": "世界", "quad": [[64, 96], [128, 96], [128, 150], [64, 150]]},
]
OCR_EXPECTED = segs(
    ("<img></img>", F),
    ("OCR with grounding:", F),
    (
        "<ref>Hello</ref><quad>(15,41),(468,41),(468,125),(15,125)</quad>"
        "<ref>世界</ref><quad>(100,200),(200,200),(200,312),(100,312)</quad>",
        T,
    ),
)


def test_ocr():
    assert render("ocr", {"image": "a.jpg", "lines": OCR_LINES}, SIZE) == OCR_EXPECTED


def test_ocr_segments_for_synthdog():
    assert ocr_segments(OCR_LINES, 640, 480) == OCR_EXPECTED


def test_text():
    assert render("text", {"text": "Some in-house text."}, []) == segs(("Some in-house text.", T))


def test_chat_renders_chatml():
    record = {"conversations": [{"from": "user", "value": "Hi"}, {"from": "assistant", "value": "Hello!"}]}
    assert join_text(render("chat", record, [])) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n"
    )


@pytest.mark.parametrize(
    ("task", "record", "paths"),
    [
        ("caption", {"image": "imgs/a.jpg", "caption": "x"}, ["imgs/a.jpg"]),
        ("ocr", {"image": "b.png", "lines": OCR_LINES}, ["b.png"]),
        ("text", {"text": "x"}, []),
        (
            "chat",
            {"conversations": [
                {"from": "user", "value": "Picture 1: <img>a.jpg</img>\nPicture 2: <img>b/c.jpg</img>\nSame?"
                 },
                {"from": "assistant", "value": "No."},
                {"from": "user", "value": "Picture 3: <img>d.jpg</img>\nAnd this?"},
                {"from": "assistant", "value": "Yes."},
            ]},
            ["a.jpg", "b/c.jpg", "d.jpg"],
        ),
        (
            "chat",
            {"image": "coco/1.jpg", "conversations": [
                {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "A cat."}]},
            ["coco/1.jpg"],
        ),
    ],
)
def test_image_fields(task, record, paths):
    assert image_fields(task, record) == paths


def test_sizes_must_match_images():
    with pytest.raises(ValueError, match="1 images but 0 sizes"):
        render("caption", {"image": "a.jpg", "caption": "x"}, [])


def test_import_stays_light():
    code = (
        "import sys, vlforge.formats, vlforge.formats.tasks, vlforge.formats.export; "
        "print(sorted(m for m in ('torch', 'ray', 'PIL', 'numpy') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
