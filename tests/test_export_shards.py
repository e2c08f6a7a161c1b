"""`vlforge export` reads shards through the typed Sample, as the trainer does: cleaned pairs and synthdog pages
export like rendered tasks, and a sample it cannot export stops it with an error naming shard and key."""

import json
import re
from pathlib import Path

import pytest

from vlforge.cli import main
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
    ({"json": "[" * 100_000 + "]" * 100_000, "jpg": b"x"}, r"KEY.json does not parse \(nested too deeply\)"),
    ({"json": {"task": "ocr", "segments": OCR_SEGMENTS}},
     r"cannot export \(sample has 1 image slots but 0 image paths were given\)"),
    ({"jpg": b"x"}, "neither KEY.json with `segments` nor KEY.txt"),
])
def test_a_sample_it_cannot_export_is_named_by_shard_and_key(tmp_path, members, message):
    shards = shard(tmp_path / "in", {"good": {"jpg": b"x", "txt": "fine"}, "bad": members})
    with pytest.raises(ValueError, match=rf"^{re.escape(str(tmp_path))}/in/u-000000\.tar: sample bad: {message}"):
        export_qwenvl_json(str(shards), tmp_path / "qwen")
    assert sorted(p.name for p in (tmp_path / "qwen").iterdir()) == [STATE_DIR]  # no data.json, images or temp


@pytest.mark.parametrize(("pattern", "message"), [
    ("empty", "no shards (*.tar) match '{}/empty'"),  # was: an empty data.json, exit 0
    ("in/*.tar", "no shards (*.tar) match '{}/in/*.tar'"),
    ("in/missing-{{0..1}}.tar", "no shard at {}/in/missing-0.tar"),
])
def test_an_input_that_names_no_tar_is_an_error_not_an_empty_export(tmp_path, pattern, message, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "in").mkdir()
    good = shard(tmp_path / "good", {"k": {"jpg": b"x", "txt": "fine"}})
    pattern, message = pattern.format(), message.format(tmp_path)
    with pytest.raises(FileNotFoundError, match=re.escape(message)):
        export_qwenvl_json([str(good), str(tmp_path / pattern)], tmp_path / "qwen")
    assert not (tmp_path / "qwen" / "data.json").exists()
    assert main(["export", "--format", "qwenvl-json", "--input", str(tmp_path / pattern),
                 "--out", str(tmp_path / "qwen")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "qwen" / "data.json").exists()


def test_a_quoted_glob_exports_every_tar_it_matches(tmp_path):
    shard(tmp_path / "in", {"a": {"jpg": b"x", "txt": "first"}})
    with ShardWriter(tmp_path / "in", "v") as writer:
        writer.write("b", {"jpg": b"y", "txt": "second"}, {"uid": "b", "source": "test"})
    assert export_qwenvl_json(str(tmp_path / "in" / "*.tar"), tmp_path / "qwen") == 2
    ids = [r["id"] for r in json.loads((tmp_path / "qwen" / "data.json").read_text())]
    assert ids == ["u-000000_a", "v-000000_b"]


def test_images_are_the_members_with_a_shard_image_extension(tmp_path):
    """Sample reads image members by `shards.members.is_image`: gif and bmp too, numbered in slot order."""
    two = [{"text": "Picture 1: <img></img>\nPicture 2: <img></img>\nHow many?", "train": False},
           {"text": "Two.", "train": True}]
    shards = shard(tmp_path / "in", {
        "c": {"gif": b"cleaned gif", "txt": "A gif."},
        "r": {"1.jpg": b"second", "0.bmp": b"first", "10.txt": b"not an image",
              "json": {"task": "vqa", "segments": two}}})
    assert export_qwenvl_json(str(shards), tmp_path / "qwen") == 2
    images = tmp_path / "qwen" / "images"
    assert sorted(p.name for p in images.iterdir()) == ["000000000.0.gif", "000000001.0.bmp", "000000001.1.jpg"]
    assert [(images / n).read_bytes() for n in ("000000001.0.bmp", "000000001.1.jpg")] == [b"first", b"second"]
