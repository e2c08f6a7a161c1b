"""What the trainer feeds the model: special tokens, label masks, image spans, and finetune.py's chat rule."""

import json
import re
import shutil

import pytest
from test_chat import finetune_py_preprocess
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from tokenizers.pre_tokenizers import Whitespace
from train_support import EXAMPLES, qwen, render_here, smollm
from transformers import PreTrainedTokenizerFast

from vlforge.formats.export import to_qwenvl_conversation
from vlforge.formats.sample import Sample, SampleError, sample_from_wds
from vlforge.formats.segments import Segment
from vlforge.shards.reader import iter_samples
from vlforge.training.tokenizer import SPECIAL_TOKENS, end_token_id, load_tokenizer
from vlforge.training.tokens import IGNORE_INDEX, encode_sample

TOKENIZERS = {"qwen": qwen, "smollm2": smollm}
N = 4  # image positions per image in these tests (256 in training)


@pytest.fixture(scope="module", params=sorted(TOKENIZERS))
def tok(request):
    return TOKENIZERS[request.param]()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every bundled example task, rendered to shards by `vlforge render`'s own unit code, read back."""
    out = tmp_path_factory.mktemp("rendered")
    samples = {}
    for jsonl in sorted(EXAMPLES.glob("*.jsonl")):
        render_here(jsonl, out / jsonl.stem)
        samples[jsonl.stem] = [sample_from_wds(d) for d in iter_samples(str(out / jsonl.stem))]
    return samples


def test_special_tokens_are_added_once_as_single_ids():
    """Qwen and SmolLM2 both have the ChatML tokens; the nine Qwen-VL tokens are new rows after their vocabularies."""
    for tok, base in ((qwen(), 151669), (smollm(), 49152)):
        ids = [tok(t, add_special_tokens=False).input_ids for t in SPECIAL_TOKENS]
        assert all(len(i) == 1 for i in ids)
        assert sorted(i[0] for i in ids[:9]) == list(range(base, base + 9))
        assert len(tok) == base + 9
        text = tok("x<ref>a</ref><box>(1,2),(3,4)</box>", add_special_tokens=False).input_ids
        assert tok.convert_tokens_to_ids("<box>") in text


def test_end_token_is_endoftext_else_eos():
    assert end_token_id(qwen()) == 151643  # Qwen's <|endoftext|>
    assert end_token_id(smollm()) == 0  # SmolLM2's <|endoftext|>
    vocab = {"[UNK]": 0, "</s>": 1, "hello": 2}
    plain = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    plain.pre_tokenizer = Whitespace()
    assert end_token_id(PreTrainedTokenizerFast(tokenizer_object=plain, eos_token="</s>")) == 1


@pytest.mark.parametrize("make", [
    lambda tmp: tmp / "missing",
    lambda tmp: tmp,  # a directory without tokenizer.json
    lambda tmp: (tmp / "bad.gguf").write_bytes(b"GGUF not really") and tmp / "bad.gguf",
])
def test_bad_tokenizer_paths_are_clear_errors(tmp_path, make):
    with pytest.raises(ValueError, match="tokenizer"):
        load_tokenizer(make(tmp_path))


def _decoded_parts(tok, enc):
    pad, img = tok.convert_tokens_to_ids("<imgpad>"), tok.convert_tokens_to_ids("<img>")
    text = tok.decode(enc.input_ids)
    supervised = tok.decode([t for t, label in zip(enc.input_ids, enc.labels, strict=True) if label != IGNORE_INDEX])
    return text, supervised, pad, img


def test_every_task_masks_exactly_its_supervised_segments_and_the_end_token(tok, rendered):
    end = tok.convert_ids_to_tokens(end_token_id(tok))
    for task, samples in rendered.items():
        for sample in samples:
            enc = encode_sample(sample, tok, N)
            text, supervised, pad, img = _decoded_parts(tok, enc)
            whole = "".join(s.text for s in sample.segments).replace("<img></img>", "<img>" + "<imgpad>" * N + "</img>")
            wanted = "".join(s.text for s in sample.segments if s.train)
            if task != "chat":
                whole, wanted = whole + end, wanted + end
            assert text == whole, task
            assert supervised == wanted, task
            assert all(label in (IGNORE_INDEX, t) for t, label in zip(enc.input_ids, enc.labels, strict=True))
            image_ids = {pad, img, tok.convert_tokens_to_ids("</img>")}
            assert all(label == IGNORE_INDEX for t, label in zip(enc.input_ids, enc.labels, strict=True)
                       if t in image_ids)
            assert enc.input_ids.count(pad) == N * len(sample.images) == N * enc.n_images


def test_vqa_supervises_the_answer_and_end_token_only(rendered):
    tok = qwen()
    enc = encode_sample(rendered["vqa"][0], tok, N)
    _, supervised, _, _ = _decoded_parts(tok, enc)
    assert supervised == " Red.<|endoftext|>"
    assert tok.decode(enc.input_ids[:N + 2]) == "<img>" + "<imgpad>" * N + "</img>"
    assert enc.labels[:N + 2] == [IGNORE_INDEX] * (N + 2)


def test_cleaned_caption_is_a_stage1_caption():
    tok = qwen()
    sample = sample_from_wds({"__key__": "k", "__url__": "u.tar", "jpg": b"x", "txt": b"a red square"})
    enc = encode_sample(sample, tok, N)
    assert sample.task == "caption_stage1"
    assert _decoded_parts(tok, enc)[1] == "a red square<|endoftext|>"
    assert enc.input_ids[:N + 2] == [151669] + [151671] * N + [151670]


def test_image_count_mismatch_names_the_sample():
    sample = Sample("key_7", "caption", "src", [Segment("<img></img>", False), Segment("hi", True)], [], {})
    with pytest.raises(SampleError, match="sample key_7: 1 <img></img> slots but 0 images") as raised:
        encode_sample(sample, qwen(), N)
    assert raised.value.reason == "image_count"


# Qwen-VL's finetune.py, preprocess(), as tests/test_chat.py restates it, run here with real tokenizers.
# Qwen-VL's own tokenizer turns `<img>PATH</img>` into <img>, 256 ids, </img> and tokenizes the text on either
# side of it on its own; here those ids are <imgpad>: the model sees the adapter's outputs there either way.
def qwenvl_tokenize(tok, text: str) -> list[int]:
    ids = []
    for part in re.split(r"(<img>[^<>]*</img>)", text):
        if part.startswith("<img>"):
            ids += tok.convert_tokens_to_ids(["<img>", *["<imgpad>"] * N, "</img>"])
        elif part:
            ids += tok(part, add_special_tokens=False).input_ids
    return ids


CHAT_RECORDS = [
    {"conversations": [
        {"from": "user", "value": "Picture 1: <img>images/dog.jpg</img>\nWhat is in the picture?"},
        {"from": "assistant", "value": "A dog on a beach."},
        {"from": "user", "value": "Where is the dog?"},
        {"from": "assistant", "value": "<ref>The dog</ref><box>(451,379),(731,806)</box>"}]},
    {"image": ["images/a.jpg", "images/b.jpg"], "conversations": [
        {"from": "human", "value": "<image>\n<image>\n两张图一样吗？"},
        {"from": "gpt", "value": "不一样。\n第一张是狗。"},
        {"from": "human", "value": "Are you sure?"},
        {"from": "gpt", "value": " Yes. "}]},
]


@pytest.fixture(scope="module")
def chat_samples(tmp_path_factory, rendered):
    """The bundled chat examples plus a Qwen-VL and a two-image LLaVA record, rendered to shards."""
    tmp = tmp_path_factory.mktemp("chat")
    shutil.copytree(EXAMPLES / "images", tmp / "images")
    for name in ("dog.jpg", "a.jpg", "b.jpg"):
        shutil.copy(EXAMPLES / "images" / "chelsea.jpg", tmp / "images" / name)
    jsonl = tmp / "more.jsonl"
    jsonl.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in CHAT_RECORDS), encoding="utf-8")
    render_here(jsonl, tmp / "out", task="chat")
    return rendered["chat"] + [sample_from_wds(d) for d in iter_samples(str(tmp / "out"))]


def test_chat_tokens_and_labels_equal_finetune_py(tok, chat_samples):
    assert len(chat_samples) == 4
    for sample in chat_samples:
        paths = [f"/data/{i}.jpg" for i in range(len(sample.images))]
        turns = to_qwenvl_conversation(sample, paths, sample.key)["conversations"]
        enc = encode_sample(sample, tok, N)
        ids, target = finetune_py_preprocess(turns, lambda text: qwenvl_tokenize(tok, text))
        assert enc.input_ids == ids
        assert enc.labels == target
        assert tok.decode(enc.input_ids[-2:]) == "<|im_end|>\n"
