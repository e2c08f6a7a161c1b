"""Issue 8, items 5, 6 and 12 for `vlforge render`: hostile lines become recorded drops (or a FILE:LINE
error), a record's images are bounded, and image paths stay inside the JSONL file's folder."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import EXAMPLES
from PIL import Image

from vlforge.pipelines.executor import UnitFailure
from vlforge.pipelines.render import RenderOptions, run_render
from vlforge.shards.manifest import read_manifests
from vlforge.shards.reader import iter_samples

pytestmark = pytest.mark.usefixtures("ray_local")

GOOD = {"image": "images/chelsea.jpg", "caption": "a cat"}


def folder(tmp_path: Path) -> Path:
    src = tmp_path / "data" / "in"
    (src / "images").mkdir(parents=True)
    shutil.copy(EXAMPLES / "images/chelsea.jpg", src / "images")
    return src


def rows_of(tmp_path: Path, task: str, lines: list, **options) -> list[dict]:
    src = tmp_path / "data" / "in"
    jsonl = src / f"{task}.jsonl"
    jsonl.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    out = tmp_path / "out"
    run_render([jsonl], out, RenderOptions(task=task, on_error="skip", **options))
    return sorted(read_manifests(out).to_pylist(), key=lambda r: r["line"])


def test_a_200k_deep_json_line_is_a_drop_row_or_a_file_line_error(tmp_path):
    folder(tmp_path)
    deep = '{"e": ' + "[" * 200_000 + "]" * 200_000 + "}"
    rows = rows_of(tmp_path, "caption", [GOOD, deep, GOOD])
    assert [(r["status"], r["reason"]) for r in rows] == [
        ("kept", None), ("dropped", "bad_field:line"), ("kept", None)]
    assert rows[1]["error"] == "JSON nested too deeply"
    jsonl = tmp_path / "data/in/caption.jsonl"
    with pytest.raises(UnitFailure, match=r"caption\.jsonl:2: field line: JSON nested too deeply"):
        run_render([jsonl], tmp_path / "raise", RenderOptions(task="caption"))


def test_images_per_record_are_bounded_before_any_is_read(tmp_path):
    folder(tmp_path)
    many = "".join(f"Picture {i}: <img>images/chelsea.jpg</img>\n" for i in range(1, 301))
    chat = {"conversations": [{"from": "user", "value": many + "Which?"}, {"from": "assistant", "value": "1"}]}
    two = {"conversations": [{"from": "user", "value": "Picture 1: <img>images/chelsea.jpg</img>\n"
                                                       "Picture 2: <img>images/chelsea.jpg</img>\nSame?"},
                             {"from": "assistant", "value": "Yes"}]}
    rows = rows_of(tmp_path, "chat", [chat, two])
    assert [(r["status"], r["reason"]) for r in rows] == [("dropped", "bad_field:image"), ("kept", None)]
    assert rows[0]["error"] == "300 images, more than the limit of 32 (--max-images)"
    shutil.rmtree(tmp_path / "out")
    rows = rows_of(tmp_path, "chat", [two], max_images=1)
    assert rows[0]["error"] == "2 images, more than the limit of 1 (--max-images)"


def test_image_paths_outside_the_jsonl_folder_are_refused_unless_allowed(tmp_path):
    src = folder(tmp_path)
    shutil.copy(EXAMPLES / "images/rocket.jpg", tmp_path / "data/rocket.jpg")  # beside, not inside, the folder
    (src / "images/link.jpg").symlink_to(tmp_path / "data/rocket.jpg")
    lines = [{"image": "/etc/passwd", "caption": "x"}, {"image": "../rocket.jpg", "caption": "x"},
             {"image": "images/../../rocket.jpg", "caption": "x"}, {"image": "images/link.jpg", "caption": "x"}, GOOD]
    rows = rows_of(tmp_path, "caption", lines)
    assert [r["status"] for r in rows] == ["dropped"] * 4 + ["kept"]
    assert all("outside the JSONL file's folder" in r["error"] for r in rows[:4])

    shutil.rmtree(tmp_path / "out")
    rows = rows_of(tmp_path, "caption", lines, allow_outside_paths=True)
    assert [r["status"] for r in rows] == ["dropped", "kept", "kept", "kept", "kept"]
    assert rows[0]["error"].endswith("not one of JPEG, PNG, WEBP, GIF, BMP, TIFF")  # read, but not an image format
    rocket = (EXAMPLES / "images/rocket.jpg").read_bytes()
    assert sum(s["0.jpg"] == rocket for s in iter_samples(str(tmp_path / "out"))) == 3


def test_an_image_name_with_a_nul_character_is_a_field_error_not_a_crash(tmp_path):
    """Found by the fuzz test: resolving such a name raised ValueError out of the unit."""
    rocket = str(folder(tmp_path) / "images" / "rocket.jpg")
    nul = {"image": "images/rocket.jpg\x00", "caption": "x"}
    for allow, error in ((False, f"'{rocket}\\x00': no file name holds a NUL character"),
                         (True, f"no such image file: {rocket}\x00")):
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        rows = rows_of(tmp_path, "caption", [nul, GOOD], allow_outside_paths=allow)
        assert [(r["status"], r["reason"]) for r in rows] == [("dropped", "bad_field:image"), ("kept", None)]
        assert rows[0]["error"] == error


def test_only_allowed_image_formats_are_opened(tmp_path):
    src = folder(tmp_path)
    Image.new("RGB", (16, 16), (200, 10, 10)).save(src / "images/red.tga")
    Image.new("RGB", (16, 16), (200, 10, 10)).save(src / "images/red.png")
    rows = rows_of(tmp_path, "caption", [{"image": "images/red.tga", "caption": "red"},
                                         {"image": "images/red.png", "caption": "red"}])
    assert [(r["status"], r["reason"]) for r in rows] == [("dropped", "bad_field:image"), ("kept", None)]
    assert "not one of JPEG, PNG, WEBP, GIF, BMP, TIFF" in rows[0]["error"]
