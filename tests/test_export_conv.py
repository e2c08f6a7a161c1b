"""Rendered samples back to Qwen-VL fine-tuning records (for `vlforge export --format qwenvl-json`)."""

import json

import pytest

from vlforge.formats.export import to_qwenvl_conversation
from vlforge.formats.sample import sample_from_wds
from vlforge.formats.tasks import render

SIZE = [(640, 480)]


def typed(task, segments):
    """The typed Sample export reads, from KEY.json as a rendered shard stores it."""
    record = {"task": task, "source": "test", "segments": segments}
    return sample_from_wds({"__key__": "k", "__url__": "s.tar", "json": json.dumps(record).encode()})


def sample(task, record, sizes=SIZE):
    return typed(task, render(task, record, sizes))


def test_chat_round_trip_keeps_the_conversation():
    conversations = [
        {"from": "user",
         "value": "Picture 1: <img>in/a.jpg</img>\nPicture 2: <img>in/b.jpg</img>\nSame dog?"},
        {"from": "assistant", "value": "No.\nThe first is <ref>brown</ref><box>(1,2),(3,4)</box>."},
        {"from": "user", "value": "Picture 3: <img>in/c.jpg</img>\nAnd this?"},
        {"from": "assistant", "value": "Yes."},
    ]
    rendered = sample("chat", {"id": "x", "conversations": conversations}, SIZE * 3)
    exported = to_qwenvl_conversation(rendered, ["out/k.0.jpg", "out/k.1.jpg", "out/k.2.jpg"], "k")
    expected = [
        {"from": "user",
         "value": "Picture 1: <img>out/k.0.jpg</img>\nPicture 2: <img>out/k.1.jpg</img>\nSame dog?"},
        conversations[1],
        {"from": "user", "value": "Picture 3: <img>out/k.2.jpg</img>\nAnd this?"},
        conversations[3],
    ]
    assert exported == {"id": "k", "conversations": expected}


def test_llava_record_exports_in_qwen_form():
    record = {"image": "a.jpg", "conversations": [{"from": "human", "value": "What is this?\n<image>"},
                                                  {"from": "gpt", "value": "A bus."}]}
    assert to_qwenvl_conversation(sample("chat", record), ["img/7.jpg"], "7")["conversations"] == [
        {"from": "user", "value": "Picture 1: <img>img/7.jpg</img>\nWhat is this?"},
        {"from": "assistant", "value": "A bus."},
    ]


@pytest.mark.parametrize(
    ("task", "record", "user", "assistant"),
    [
        ("caption_stage1", {"image": "a.jpg", "caption": "A dog."},
         "Picture 1: <img>o.jpg</img>\n", "A dog."),
        ("caption", {"image": "a.jpg", "caption": "A dog."},
         "Picture 1: <img>o.jpg</img>\nGenerate the caption in English:", "A dog."),
        ("caption", {"image": "a.jpg", "caption": "一只狗", "lang": "zh"},
         "Picture 1: <img>o.jpg</img>\nGenerate the caption in Chinese:", "一只狗"),
        ("vqa", {"image": "a.jpg", "question": "What is it?", "answer": "a dog"},
         "Picture 1: <img>o.jpg</img>\nWhat is it? Answer:", "a dog"),
        ("grounding", {"image": "a.jpg", "caption": "Woman and her dog",
                       "refs": [{"span": [0, 5], "boxes": [[289, 182, 468, 387]]}]},
         "Picture 1: <img>o.jpg</img>\nGenerate the caption in English with grounding:",
         "<ref> Woman</ref><box>(451,379),(731,806)</box> and her dog"),
        ("ref_grounding", {"image": "a.jpg", "expression": "the dog", "box": [289, 182, 468, 387]},
         "Picture 1: <img>o.jpg</img>\n<ref>the dog</ref>", "<box>(451,379),(731,806)</box>"),
        ("grounded_caption", {"image": "a.jpg", "caption": "a dog", "box": [289, 182, 468, 387]},
         "Picture 1: <img>o.jpg</img>\n<ref>This</ref><box>(451,379),(731,806)</box> is", "a dog"),
        ("ocr", {"image": "a.jpg",
                 "lines": [{"text": "Hi", "quad": [[64, 96], [128, 96], [128, 150], [64, 150]]}]},
         "Picture 1: <img>o.jpg</img>\nOCR with grounding:",
         "<ref>Hi</ref><quad>(100,200),(200,200),(200,312),(100,312)</quad>"),
    ],
)
def test_task_samples_become_prompt_and_answer(task, record, user, assistant):
    assert to_qwenvl_conversation(sample(task, record), ["o.jpg"], "s1") == {
        "id": "s1",
        "conversations": [{"from": "user", "value": user}, {"from": "assistant", "value": assistant}],
    }


def test_pure_text_is_the_answer_to_an_empty_prompt():
    exported = to_qwenvl_conversation(sample("text", {"text": "Once upon a time."}, []), [], "t")
    assert exported["conversations"] == [
        {"from": "user", "value": ""},
        {"from": "assistant", "value": "Once upon a time."},
    ]


def test_image_count_must_match():
    with pytest.raises(ValueError, match="1 image slots but 2 image paths"):
        to_qwenvl_conversation(sample("caption", {"image": "a.jpg", "caption": "x"}), ["a", "b"], "s")


def test_unparsable_chat_sample_is_an_error():
    broken = typed("chat", [{"text": "<|im_start|>user\nHi", "train": False}])
    with pytest.raises(ValueError, match="not a ChatML conversation"):
        to_qwenvl_conversation(broken, [], "s")


def test_image_paths_fit_qwen_vl_tokenizer():
    """Its tokenizer keeps a path's UTF-8 bytes in the 256 positions between <img> and </img>."""
    caption = sample("caption", {"image": "a.jpg", "caption": "x"})
    longest = "/" + "a" * 251 + ".jpg"  # 256 bytes
    (user, _) = to_qwenvl_conversation(caption, [longest], "s")["conversations"]
    assert user["value"] == f"Picture 1: <img>{longest}</img>\nGenerate the caption in English:"
    for bad in ["/" + "a" * 252 + ".jpg", "/" + "图" * 84 + ".jpg", "/out/<b>.jpg"]:  # 257, 257 bytes, '<'
        with pytest.raises(ValueError, match="Qwen-VL's tokenizer takes at most 256 UTF-8 bytes"):
            to_qwenvl_conversation(caption, [bad], "s")
