"""`vlforge tokenize`: the trainer's ids and labels as JSONL, decodable with the tokenizer saved beside them."""

import json

import pytest
from train_support import EXAMPLES, jpeg, qwen_tokenizer_dir, render_here
from transformers import AutoTokenizer

from vlforge.cli import main
from vlforge.formats.sample import sample_from_wds
from vlforge.shards.listing import shard_urls
from vlforge.shards.reader import iter_samples
from vlforge.shards.writer import ShardWriter

N = 3


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tok")
    for task in ("vqa", "chat", "text"):
        render_here(EXAMPLES / f"{task}.jsonl", tmp / task)
    with ShardWriter(tmp / "bad", "bad") as writer:
        writer.write("broken", {"jpg": jpeg((1, 2, 3)), "txt": "x", "json": b"{"})
        writer.write("fine", {"jpg": jpeg((1, 2, 3)), "txt": "a fine caption"})
    return tmp


def read_lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_lines_decode_to_the_samples_text_and_supervised_spans(shards, tmp_path, capsys):
    out = tmp_path / "t.jsonl"
    patterns = [str(shards / t) for t in ("vqa", "chat", "text")] + [str(shards / "bad" / "*.tar")]
    assert main(["tokenize", "--shards", *patterns, "--tokenizer", str(qwen_tokenizer_dir()),
                 "--image-tokens", str(N), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tokenized 6 samples from 4 shards" in printed and "skipped: bad_json=1" in printed
    saved = AutoTokenizer.from_pretrained(str(tmp_path / "t.jsonl.tokenizer"))
    samples = {}
    for pattern in patterns:
        samples.update({d["__key__"]: d for d in iter_samples(shard_urls(pattern)) if d["__key__"] != "broken"})
    lines = read_lines(out)
    assert [line["key"] for line in lines] == list(samples)
    for line in lines:
        sample = sample_from_wds(samples[line["key"]])
        end = "" if sample.task == "chat" else "<|endoftext|>"
        text = "".join(s.text for s in sample.segments).replace("<img></img>", "<img>" + "<imgpad>" * N + "</img>")
        supervised = [t for t, label in zip(line["input_ids"], line["labels"], strict=True) if label != -100]
        assert line["task"] == sample.task
        assert saved.decode(line["input_ids"]) == text + end
        assert saved.decode(supervised) == "".join(s.text for s in sample.segments if s.train) + end


def test_default_tokenizer_is_smollm2_and_limit_stops_early(shards, tmp_path):
    out = tmp_path / "d.jsonl"
    assert main(["tokenize", "--shards", str(shards / "vqa"), "--image-tokens", str(N), "--limit", "1",
                 "--out", str(out)]) == 0
    (line,) = read_lines(out)
    saved = AutoTokenizer.from_pretrained(str(tmp_path / "d.jsonl.tokenizer"))
    assert len(saved) == 49152 + 9  # SmolLM2's vocabulary and the nine added Qwen-VL tokens
    assert saved.decode(line["input_ids"]).startswith("<img>" + "<imgpad>" * N + "</img>What color")


@pytest.mark.parametrize(("argv", "message"), [
    (["--shards", "MISSING"], "no shard at"),
    (["--shards", "SHARDS", "--tokenizer", "/nonexistent/tok"], "not a tokenizer directory"),
    (["--shards", "SHARDS", "--image-tokens", "0"], "--image-tokens must be >= 1"),
])
def test_bad_arguments_are_one_line_errors(shards, tmp_path, capsys, argv, message):
    argv = [{"SHARDS": str(shards / "vqa"), "MISSING": str(tmp_path / "nope")}.get(a, a) for a in argv]
    assert main(["tokenize", *argv, "--out", str(tmp_path / "x.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("vlforge tokenize: error:") and message in err and "Traceback" not in err
    assert not (tmp_path / "x.jsonl").exists()


def test_existing_output_is_never_overwritten(shards, tmp_path, capsys):
    out = tmp_path / "mine.jsonl"
    out.write_text("not vlforge's\n")
    assert main(["tokenize", "--shards", str(shards / "vqa"), "--tokenizer", str(qwen_tokenizer_dir()),
                 "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert out.read_text() == "not vlforge's\n"
