"""`vlforge export` reads shards through the typed Sample, as the trainer does: cleaned pairs and synthdog pages
export like rendered tasks, and a sample it cannot export stops it with an error naming shard and key."""

import json
import re
from pathlib import Path

import pytest

from vlforge.pipelines.export import export_qwenvl_json
from vlforge.shards.fence import STATE_DIR
from vlforge.shards.writer import ShardWriter

QUAD = "<ref>Hi</ref><quad>(100,200),(200,200),(200,312),(100,312)</quad>"
OCR_SEGMENTS = [{"text": "<img></img>", "train": False}, {"text": "OCR with grounding:", "train": False},
                {"text": QUAD, "train": True}]


def shard(directory: Path, samples: dict[str, dict]) -> Path:
    with ShardWriter(directory, "u") as writer:
        for key, members in samples.items():
            writer.write(key, members, {"uid": key, "source": "test"})
    return directory


def test_cleaned_and_synthdog_shards_export_as_captions_and_ocr(tmp_path):
    cleaned = shard(tmp_path / "cleaned", {"c0": {"png": b"cleaned image", "txt": "A red square.",
                                                  "json": {"uid": "c0", "url": "http://example.com/a.png"}}})
    synthdog = shard(tmp_path / "synthdog", {"en_000000007": {
        "jpg": b"synthdog page", "json": {"task": "ocr", "source": "synthdog_en", "segments": OCR_SEGMENTS}}})
    out = tmp_path / "qwen"
    assert export_qwenvl_json([str(cleaned), str(synthdog)], out) == 2
    images = (out / "images").resolve()
    assert json.loads((out / "data.json").read_text()) == [
        {"id": "u-000000_c0", "conversations": [
            {"from": "user", "value": f"Picture 1: <img>{images}/000000000.0.png</img>\n"},
            {"from": "assistant", "value": "A red square."}]},
        {"id": "u-000000_en_000000007", "conversations": [
            {"from": "user", "value": f"Picture 1: <img>{images}/000000001.0.jpg</img>\nOCR with grounding:"},
            {"from": "assistant", "value": QUAD}]},
    ]
    assert (images / "000000000.0.png").read_bytes() == b"cleaned image"
    assert (images / "000000001.0.jpg").read_bytes() == b"synthdog page"


@pytest.mark.parametrize(("members", "message"), [
    ({"json": "{not json", "jpg": b"x"}, "KEY.json does not parse"),
    ({"json": {"task": "ocr", "segments": OCR_SEGMENTS}},
     r"cannot export \(sample has 1 image slots but 0 image paths were given\)"),
    ({"jpg": b"x"}, "neither KEY.json with `segments` nor KEY.txt"),
])
def test_a_sample_it_cannot_export_is_named_by_shard_and_key(tmp_path, members, message):
    shards = shard(tmp_path / "in", {"good": {"jpg": b"x", "txt": "fine"}, "bad": members})
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path))}/in/u-000000\.tar: sample bad: {message}"):
        export_qwenvl_json(str(shards), tmp_path / "qwen")
    assert sorted(p.name for p in (tmp_path / "qwen").iterdir()) == [STATE_DIR]  # no data.json, images or temp
