"""Whole samples: quads enclose the ink, labels are exactly what the fonts drew, runs are reproducible."""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from test_synthdog_support import (
    CHINESE_TEXT,
    ENGLISH_TEXT,
    font_codepoints,
    outside_distance,
    polygon_area,
    resources,
    write_corpus,
)

from vlforge.formats.tasks import ocr_segments
from vlforge.synthdog import geometry as G
from vlforge.synthdog.config import load_config
from vlforge.synthdog.corpus import clean_text
from vlforge.synthdog.effects import elastic
from vlforge.synthdog.render import draw_lines, warp
from vlforge.synthdog.resources import load_resources, prepare_resources
from vlforge.synthdog.sample import EmptySample, plan_with_text, synthesize

DEFAULT = load_config({})
ROTATED = load_config({"document": {"rotation": {"prob": 1.0, "angle": [-25, 25]}}})
FLAT = load_config({"document": {"perspective": {"prob": 0.0}}})
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")


def _face_path(res, line_font: str) -> tuple[str, int]:
    for face in res.fonts.faces:
        if face.label == line_font:
            return face.path, face.index
    raise AssertionError(f"font {line_font} not in the library")


def _line_alone(plan, line, font_path: str, face_index: int) -> Image.Image:
    """The line's text layer on its own, drawn by plain PIL from its font file, size and origin."""
    font = ImageFont.truetype(font_path, line.size, index=face_index, layout_engine=ImageFont.Layout.BASIC)
    layer = Image.new("L", plan.doc_size)
    ImageDraw.Draw(layer).text(line.origin, line.text, font=font, fill=255)
    return layer


@pytest.mark.parametrize("config", [DEFAULT, ROTATED], ids=["synthdog", "rotated"])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_quad_encloses_its_line_ink(config, lang):
    """Each line drawn alone goes through the document's elastic distortion and warp; its ink must lie
    inside the quad written to the JSON, and its ink box, warped, must lie inside the quad and fill most
    of it (the quad is the ink box grown by at most the 1 px the elastic distortion can move ink)."""
    res = resources(config)
    fills = []
    for index in range(4):
        plan = plan_with_text(lang, 7, index, config, res)
        record = synthesize(lang, 7, index, config, res).record
        assert [line["text"] for line in record["lines"]] == [line.text for line in plan.lines]
        for line, recorded in zip(plan.lines, record["lines"], strict=True):
            quad = np.array(recorded["quad"])
            layer = _line_alone(plan, line, *_face_path(res, recorded["font"]))
            distorted = elastic(layer, plan.elastic) if plan.elastic else layer
            ys, xs = np.nonzero(np.asarray(warp(distorted, plan)) > 32)
            assert len(xs), f"line {line.text!r} left no ink"
            assert outside_distance(np.c_[xs + 0.5, ys + 0.5], quad).max() <= 1.0, line.text
            ys, xs = np.nonzero(np.asarray(layer))
            ink_box = G.apply(plan.homography, G.box_corners(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1))
            assert outside_distance(ink_box, quad).max() <= 0.02, line.text
            if min(xs.max() - xs.min(), ys.max() - ys.min()) >= 3:  # a dash's quad is mostly the 1 px margin
                fills.append(polygon_area(ink_box) / polygon_area(quad))
    assert len(fills) > 20
    assert min(fills) > 0.5 and np.median(fills) > 0.85, (min(fills), np.median(fills))


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_labels_are_what_the_named_font_draws(lang):
    """Each line re-rendered by plain PIL from its recorded text, font file and size matches the page,
    and the font (read with fontTools) maps every character of the label."""
    res = resources(DEFAULT)
    for index in range(3):
        plan = plan_with_text(lang, 11, index, DEFAULT, res)
        sample = synthesize(lang, 11, index, DEFAULT, res)
        assert [line["text"] for line in sample.record["lines"]] == [line.text for line in plan.lines]
        for line, recorded in zip(plan.lines, sample.record["lines"], strict=True):
            path, face_index = _face_path(res, recorded["font"])
            drawn = draw_lines(plan.doc_size, [line], res.fonts)
            assert np.array_equal(np.asarray(_line_alone(plan, line, path, face_index)), np.asarray(drawn))
            cmap = font_codepoints(path, face_index)
            missing = [c for c in line.text if not c.isspace() and ord(c) not in cmap]
            assert not missing, f"{recorded['font']} lacks {missing} in {line.text!r}"


def test_english_lines_are_whole_words_in_order(tmp_path):
    corpus = write_corpus(tmp_path / "en.txt", ENGLISH_TEXT)
    res = resources(DEFAULT, ("en",), corpora={"en": [corpus]})
    text = " " + clean_text(ENGLISH_TEXT, "en") + " "
    lines = 0
    for index in range(8):
        for line in plan_with_text("en", 3, index, DEFAULT, res).lines:
            assert line.text == line.text.strip() and "  " not in line.text
            assert f" {line.text} " in text, f"{line.text!r} is not a run of whole corpus words"
            lines += 1
    assert lines > 50


def test_default_english_lines_use_corpus_words_only():
    res = resources(DEFAULT)
    words = set(res.corpora["en"].text.split(" "))
    for index in range(6):
        for line in plan_with_text("en", 5, index, DEFAULT, res).lines:
            assert all(token in words for token in line.text.split(" ")), line.text


def test_chinese_lines_are_exact_text_without_inserted_spaces(tmp_path):
    corpus = write_corpus(tmp_path / "zh.txt", CHINESE_TEXT)
    res = resources(DEFAULT, ("zh",), corpora={"zh": [corpus]})
    text = clean_text(CHINESE_TEXT, "zh")
    for index in range(8):
        for line in plan_with_text("zh", 3, index, DEFAULT, res).lines:
            assert " " not in line.text and line.text in text
    default = resources(DEFAULT)
    for index in range(6):
        for line in plan_with_text("zh", 5, index, DEFAULT, default).lines:
            for m in re.finditer(" ", line.text):
                around = line.text[max(m.start() - 1, 0):m.end() + 1]
                assert not CJK.search(around), f"space next to a CJK character in {line.text!r}"


def test_same_seed_same_bytes_other_seed_other_image():
    res = resources(DEFAULT)
    first = synthesize("en", 42, 17, DEFAULT, res)
    again = synthesize("en", 42, 17, DEFAULT, res)
    assert first.jpeg == again.jpeg and first.record == again.record
    assert synthesize("en", 43, 17, DEFAULT, res).jpeg != first.jpeg
    assert synthesize("en", 42, 18, DEFAULT, res).jpeg != first.jpeg


def test_record_is_an_ocr_task_sample():
    res = resources(DEFAULT)
    sample = synthesize("zh", 1, 2, DEFAULT, res)
    record = json.loads(json.dumps(sample.record))
    image = Image.open(io.BytesIO(sample.jpeg))
    assert image.size == (448, 448) == (record["width"], record["height"])
    assert record["task"] == "ocr" and record["source"] == "synthdog-zh" and record["lang"] == "zh"
    assert record["segments"] == ocr_segments(record["lines"], 448, 448)
    assert record["segments"][1] == {"text": "OCR with grounding:", "train": False}
    assert record["segments"][2]["text"].count("<quad>") == len(record["lines"])
    first = record["lines"][0]
    per_mille = [(min(int(x / 448 * 1000), 999), min(int(y / 448 * 1000), 999)) for x, y in first["quad"]]
    corners = ",".join(f"({x},{y})" for x, y in per_mille)
    assert record["segments"][2]["text"].startswith(f"<ref>{first['text']}</ref><quad>{corners}</quad>")
    assert record["seed"] == 1 and record["index"] == 2 and record["fonts"]
    for line in record["lines"]:
        assert len(line["quad"]) == 4
        assert all(0 <= x <= 448 and 0 <= y <= 448 for x, y in line["quad"])


def test_lines_read_top_to_bottom_left_to_right():
    res = resources(FLAT)
    for index in range(6):
        plan = plan_with_text("en", 9, index, FLAT, res)
        tops = [(line.origin[1], line.origin[0]) for line in plan.lines]
        for (y0, x0), (y1, x1) in itertools.pairwise(tops):
            assert y1 > y0 or (y1 == y0 and x1 > x0), (tops, index)


def test_variable_size_follows_synthdog_canvas():
    config = load_config({"canvas": {"size": None}})
    res = resources(config)
    sizes = {synthesize("en", 0, i, config, res).record["width"] for i in range(4)}
    for i in range(4):
        width, height = Image.open(io.BytesIO(synthesize("en", 0, i, config, res).jpeg)).size
        assert 720 <= min(width, height) <= 1024 and max(width, height) <= 2 * min(width, height) + 1
    assert len(sizes) > 1


def test_unreadable_background_is_skipped_and_counted(tmp_path, caplog):
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a_broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    Image.new("RGB", (64, 48), (10, 200, 30)).save(photos / "b_green.png")
    config = load_config({"background": {"texture_prob": 0.0}})
    spec, report = prepare_resources(["en"], config, backgrounds=[str(photos)])
    assert report.backgrounds == 2
    res = load_resources(spec, config)
    with caplog.at_level(logging.WARNING):
        rows = [synthesize("en", 0, i, config, res).row for i in range(6)]
    assert {row["background"] for row in rows} == {"b_green.png"}
    assert sum(row["unreadable_backgrounds"] for row in rows) >= 1
    assert all(row["unreadable_backgrounds"] in (0, 1) for row in rows)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(m.startswith("backgrounds: skipping unreadable image") and "a_broken.jpg" in m
               for m in warnings)


def test_bad_font_sources_are_skipped_or_refused(tmp_path, caplog):
    import matplotlib

    fonts = tmp_path / "fonts"
    fonts.mkdir()
    (fonts / "garbage.otf").write_bytes(b"\x00\x01\x00\x00 junk")
    mpl = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    for name in ("DejaVuSans.ttf", "DejaVuSansDisplay.ttf"):  # Display has almost no glyphs
        (fonts / name).write_bytes((mpl / name).read_bytes())
    with caplog.at_level(logging.WARNING):
        _, report = prepare_resources(["en"], DEFAULT, fonts=[str(fonts)])
    skipped = dict(report.fonts_skipped)
    assert skipped[str(fonts / "garbage.otf")].startswith("not a font")
    assert skipped[str(fonts / "DejaVuSansDisplay.ttf") + "#0"].startswith("lacks glyphs")
    assert report.fonts_by_lang == {"en": 1} and report.counts()["fonts_skipped"] == 2
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "garbage.otf" in warned and "DejaVuSansDisplay.ttf" in warned
    with pytest.raises(ValueError, match="no font has the glyphs of the zh corpus"):
        prepare_resources(["zh"], DEFAULT, fonts=[str(fonts)])
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        prepare_resources(["en"], DEFAULT, fonts=[str(tmp_path / "no-such-dir")])


def test_a_document_without_room_for_text_is_an_empty_sample():
    config = load_config({"document": {"content": {"layout": {"min_text_px": 4000}}}})
    with pytest.raises(EmptySample, match="no text line"):
        synthesize("en", 0, 0, config, resources(config))
