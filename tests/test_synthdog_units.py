"""SynthDoG building blocks: config, geometry, effects, corpus, line fitting, font checks."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import yaml
from PIL import Image, ImageFont
from test_synthdog_support import RECIPE, write_corpus

from vlforge.synthdog import geometry as G
from vlforge.synthdog.config import ConfigError, load_config
from vlforge.synthdog.corpus import Corpus, clean_text, guess_language, load_corpus
from vlforge.synthdog.donut import split_of, text_sequence
from vlforge.synthdog.effects import (
    CanvasEffects,
    Elastic,
    Noise,
    add_noise,
    apply_canvas_effects,
    elastic,
    motion_kernel,
    shadow_profile,
)
from vlforge.synthdog.fonts import SizedFont, assign_languages, face_problem, read_faces, scan_fonts
from vlforge.synthdog.textfit import fit_line

MPL_FONTS = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
DEJAVU = str(MPL_FONTS / "DejaVuSans.ttf")


def noto_path() -> str:
    import noto_cjk_sans_otc

    return str(Path(noto_cjk_sans_otc.__file__).parent / "NotoSansCJK-Regular.ttc")


# ---------------------------------------------------------------- config


def test_shipped_recipe_lists_exactly_the_defaults():
    recipe = yaml.safe_load(RECIPE.read_text(encoding="utf-8"))
    assert load_config(recipe["synthdog"]) == load_config({})
    assert load_config({}).canvas.size == 448
    assert load_config({}).document.perspective.weights == (750, 50, 50, 25, 25, 25, 25, 50)


@pytest.mark.parametrize(("data", "field"), [
    ({"document": {"noise": {"scale": [5, 1]}}}, "synthdog.document.noise.scale"),
    ({"documnt": {}}, "synthdog.documnt"),
    ({"effects": {"shadow": {"intensity": [0, 300]}}}, "synthdog.effects.shadow.intensity"),
    ({"document": {"perspective": {"weights": [1, 2]}}}, "synthdog.document.perspective"),
    ({"canvas": {"size": 8}}, "synthdog.canvas.size"),
    ({"document": {"content": {"layout": {"align": ["up"]}}}}, "synthdog.document.content.layout.align"),
    ({"document": {"elastic": {"alpha": [0, 3]}}}, "synthdog.document.elastic.alpha"),
])
def test_bad_config_names_the_field(data, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(data)


def test_partial_config_keeps_other_defaults():
    cfg = load_config({"document": {"rotation": {"prob": 1}}})
    assert cfg.document.rotation.prob == 1
    assert cfg.document.rotation.angle == (-10, 10)
    assert cfg.effects == load_config({}).effects


# ---------------------------------------------------------------- geometry


def test_quad_to_quad_maps_the_corners():
    src = G.box_corners(0, 0, 100, 50)
    dst = np.array([[10, 5], [90, 12], [95, 60], [3, 55]], dtype=float)
    np.testing.assert_allclose(G.apply(G.quad_to_quad(src, dst), src), dst, atol=1e-9)


def test_rotation_turns_counter_clockwise_on_screen():
    # y points down, so a quarter turn counter-clockwise takes +x to -y (up).
    np.testing.assert_allclose(G.apply(G.rotation(90, 0, 0), [[1, 0]]), [[0, -1]], atol=1e-12)
    np.testing.assert_allclose(G.apply(G.rotation(90, 5, 5), [[6, 5]]), [[5, 4]], atol=1e-12)


def test_pil_coefficients_move_pixels_like_the_matrix():
    image = Image.new("L", (40, 30))
    image.putpixel((10, 10), 255)
    moved = image.transform((40, 30), Image.Transform.PERSPECTIVE,
                            G.pil_coefficients(G.translation(5, 3)), Image.Resampling.BILINEAR)
    assert moved.getpixel((15, 13)) == 255
    assert moved.getbbox() == (15, 13, 16, 14)


def test_perspective_quad_follows_synthdog_formula():
    # top side kept at 50%: its ends move in by 25 each; sliding it fully right (align 1) moves it by 25 more
    np.testing.assert_allclose(G.perspective_quad(100, 50, [0.5, 1, 1, 1], [0, 0, 0, 0]),
                               [[25, 0], [75, 0], [100, 50], [0, 50]])
    np.testing.assert_allclose(G.perspective_quad(100, 50, [0.5, 1, 1, 1], [1, 0, 0, 0]),
                               [[50, 0], [100, 0], [100, 50], [0, 50]])
    # left side kept at 80%: its ends move in by 5 vertically
    np.testing.assert_allclose(G.perspective_quad(100, 50, [1, 1, 1, 0.8], [0, 0, 0, 0]),
                               [[0, 5], [100, 0], [100, 50], [0, 45]])


# ---------------------------------------------------------------- effects


def _fx(**kwargs) -> CanvasEffects:
    base = {"color": None, "shadow": None, "contrast": None, "brightness": None, "motion_blur": None,
            "gaussian_blur": None}
    return CanvasEffects(**{**base, **kwargs})


def test_contrast_then_brightness_clip_in_synthdog_order():
    image = Image.new("RGB", (3, 1))
    for x, v in enumerate((0, 128, 255)):
        image.putpixel((x, 0), (v, v, v))
    out = apply_canvas_effects(image, _fx(contrast=1.5, brightness=-48))
    # 255 -> min(255, 1.5*255 - 64) = 255 -> 207; 128 -> 128 -> 80; 0 -> 0 -> 0
    assert [out.getpixel((x, 0))[0] for x in range(3)] == [0, 80, 207]


def test_color_shift_blends_towards_the_color():
    out = apply_canvas_effects(Image.new("RGB", (2, 2), (100, 100, 100)), _fx(color=((200, 0, 100), 0.25)))
    assert out.getpixel((0, 0)) == (125, 75, 100)


def test_shadow_darkens_the_side_it_points_to():
    white = Image.new("RGB", (100, 60), (255, 255, 255))
    right = np.asarray(apply_canvas_effects(white, _fx(shadow=(255, 0.5, 0.0, False, 0.0, 0.0))))[..., 0]
    assert right[:, :45].min() == 255 and right[:, 55:].max() == 0
    left = np.asarray(apply_canvas_effects(white, _fx(shadow=(255, 0.5, 0.0, False, 0.0, 180.0))))[..., 0]
    assert left[:, 55:].min() == 255 and left[:, :45].max() == 0


def test_shadow_profile_eases_over_the_soft_edge():
    hard = shadow_profile(1000, amount=0.5, smoothing=0.0, bidirectional=False, align=0.0)
    assert hard[:499].max() == 0 and hard[501:].min() == 1
    soft = shadow_profile(1000, amount=0.5, smoothing=1.0, bidirectional=False, align=0.0)
    assert soft[0] < 0.01 and abs(soft[500] - 0.5) < 0.01 and soft[-1] > 0.99
    assert np.all(np.diff(soft) >= -1e-12)


def test_motion_kernel_is_a_normalised_line():
    horizontal = np.array(motion_kernel(3, 0)).reshape(3, 3)
    np.testing.assert_allclose(horizontal, [[0, 0, 0], [1 / 3, 1 / 3, 1 / 3], [0, 0, 0]], atol=1e-9)
    vertical = np.array(motion_kernel(5, 90)).reshape(5, 5)
    np.testing.assert_allclose(vertical[:, 2], [0.2] * 5, atol=1e-9)
    assert math.isclose(sum(motion_kernel(4, 33)), 1.0)


def test_elastic_moves_ink_by_at_most_its_amplitude():
    mask = Image.new("L", (64, 64))
    for y in range(64):
        mask.putpixel((30, y), 255)
    moved = np.asarray(elastic(mask, Elastic(alpha=1.0, sigma=0.3, offsets=(1, 2, 3, 4))))
    columns = np.nonzero(moved.max(axis=0))[0]
    assert columns.min() >= 29 and columns.max() <= 31
    assert not np.array_equal(moved, np.asarray(mask))
    still = elastic(mask, Elastic(alpha=0.0, sigma=0.3, offsets=(1, 2, 3, 4)))
    assert np.array_equal(np.asarray(still), np.asarray(mask))


def test_noise_is_shared_by_the_channels_and_scales():
    gray = Image.new("RGB", (50, 40), (120, 120, 120))
    noisy = np.asarray(add_noise(gray, Noise(8.0, (5, 7)))).astype(int)
    assert np.array_equal(noisy[..., 0], noisy[..., 1]) and np.array_equal(noisy[..., 1], noisy[..., 2])
    assert 5 < noisy[..., 0].std() < 11
    assert np.array_equal(np.asarray(add_noise(gray, Noise(0.0, (5, 7)))), np.asarray(gray))


# ---------------------------------------------------------------- corpus and line fitting


def test_clean_text_per_language():
    assert clean_text("a  b\n\n*****\nc ----- d", "en") == "a b c d"
    assert clean_text("中 国  ABC def\n人 民 1998 年", "zh") == "中国ABC def人民1998年"
    assert guess_language("这是中文文本，没有英文。") == "zh"
    assert guess_language("Plain English words.") == "en"


def test_corpus_starts_at_word_boundaries_and_wraps():
    corpus = Corpus("en", "alpha beta gamma delta")
    for seed in range(50):
        pos = corpus.start(np.random.default_rng(seed))
        assert pos == 0 or corpus.text[pos - 1] == " " or corpus.text[pos] == " "
    assert [unit for unit, _ in corpus.units(11)] == ["gamma", " ", "delta"]
    assert [unit for unit, _ in corpus.units(len(corpus.text))][:3] == ["alpha", " ", "beta"]


def _sized(path: str, size: int, index: int = 0) -> SizedFont:
    return SizedFont(ImageFont.truetype(path, size, index=index, layout_engine=ImageFont.Layout.BASIC), size)


def _codepoints(path: str, index: int = 0) -> frozenset[int]:
    return {face.index: cps for face, cps, _ in read_faces(Path(path))}[index]


def test_fit_line_takes_whole_words_that_fit():
    font = _sized(DEJAVU, 20)
    corpus = Corpus("en", "alpha beta gamma")
    room = font.font.getlength("alpha beta")
    assert fit_line(corpus, 0, font, _codepoints(DEJAVU), room + 0.5).text == "alpha beta"
    fitted = fit_line(corpus, 0, font, _codepoints(DEJAVU), room - 1)
    assert fitted.text == "alpha"
    assert corpus.text[fitted.next_pos:].lstrip().startswith("beta")


def test_fit_line_skips_what_the_font_cannot_draw_or_what_never_fits():
    font = _sized(DEJAVU, 20)
    cps = _codepoints(DEJAVU)
    assert fit_line(Corpus("en", "abc 中文 def"), 0, font, cps, 1000).text == "abc def"
    narrow = font.font.getlength("a b") + 0.5
    assert fit_line(Corpus("en", "supercalifragilistic a b"), 0, font, cps, narrow).text == "a b"


def test_fit_line_chinese_has_no_spaces_and_respects_width():
    font = _sized(noto_path(), 24, 2)
    cps = _codepoints(noto_path(), 2)
    corpus = Corpus("zh", clean_text("我们 今天 在 北京 召开 会议 ABC def 讨论 问题", "zh"))
    line = fit_line(corpus, 0, font, cps, font.font.getlength("我们今天在") + 0.1)
    assert line.text == "我们今天在"
    whole = fit_line(corpus, 0, font, cps, 2000).text
    assert whole == "我们今天在北京召开会议ABC def讨论问题"


def test_fit_line_never_exceeds_the_room():
    font = _sized(str(MPL_FONTS / "DejaVuSerif-Italic.ttf"), 17)
    corpus = Corpus("en", clean_text("AVAWAY Tj. LTV fijord To. Ty, WAVE " * 20, "en"))
    cps = _codepoints(str(MPL_FONTS / "DejaVuSerif-Italic.ttf"))
    for room in range(30, 400, 7):
        line = fit_line(corpus, 0, font, cps, room)
        assert font.font.getlength(line.text) <= room


def test_empty_corpus_is_a_clear_error(tmp_path):
    empty = write_corpus(tmp_path / "empty.txt", "  \n ")
    with pytest.raises(ValueError, match=r"no usable en corpus .*empty\.txt: no text"):
        load_corpus("en", [empty])
    good = write_corpus(tmp_path / "good.txt", "some words here")
    corpus, skipped = load_corpus("en", [empty, good])
    assert corpus.text == "some words here"
    assert [s for s, _ in skipped] == [empty]
    with pytest.raises(ValueError, match="not UTF-8"):
        (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
        load_corpus("en", [str(tmp_path / "latin1.txt")])


def test_donut_label_has_spaces_between_english_lines_only():
    assert text_sequence(["Hello world,", "again."], "en") == "Hello world, again."
    assert text_sequence(["我们今天", "在北京。"], "zh") == "我们今天在北京。"
    assert text_sequence(["会议ABC", "def讨论", "1998", "年"], "zh") == "会议ABC def讨论1998年"


def test_donut_splits_are_stable_and_near_80_10_10():
    keys = [f"en_{i:09d}" for i in range(5000)]
    splits = [split_of(key) for key in keys]
    assert splits == [split_of(key) for key in keys]
    shares = {name: splits.count(name) / len(keys) for name in ("train", "validation", "test")}
    assert abs(shares["train"] - 0.8) < 0.03 and abs(shares["validation"] - 0.1) < 0.02, shares


# ---------------------------------------------------------------- fonts


def _problem(name: str) -> str | None:
    faces = read_faces(MPL_FONTS / name)
    return faces[0][2]


def test_face_checks_reject_placeholder_and_symbol_fonts():
    assert _problem("DejaVuSans.ttf") is None
    assert "placeholder" in _problem("LastResortHE-Regular.ttf")
    assert "symbol encoding" in _problem("cmr10.ttf")
    assert face_problem({}) == "no Unicode character map"


def test_collections_give_every_face():
    faces = read_faces(Path(noto_path()))
    assert len(faces) == 10
    assert all(problem is None and 0x4E2D in cps for _, cps, problem in faces)
    assert [face.index for face, _, _ in faces] == list(range(10))


def test_scan_skips_non_fonts_and_duplicates_and_assigns_languages(tmp_path):
    (tmp_path / "notafont.ttf").write_bytes(b"this is not a font at all" * 10)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "DejaVuSans.ttf").write_bytes(Path(DEJAVU).read_bytes())
    sources = [str(tmp_path), DEJAVU, str(MPL_FONTS / "DejaVuSansDisplay.ttf"), noto_path()]
    scan, cmaps = scan_fonts(sources)
    reasons = dict(scan.skipped)
    assert reasons[str(tmp_path / "notafont.ttf")].startswith("not a font")
    assert any("duplicate" in r for r in reasons.values())
    names = [face.name for face in scan.faces]
    assert names.count("DejaVu Sans") == 1
    counts = {"en": {"a": 5, "b": 3, ".": 1}, "zh": {"中": 4, "国": 2, "，": 1}}
    by_lang, unused = assign_languages(scan.faces, cmaps, counts, 0.99)
    dejavu = names.index("DejaVu Sans")
    display = names.index("DejaVu Sans Display")
    assert dejavu in by_lang["en"] and dejavu not in by_lang["zh"]
    assert display not in by_lang["en"] and any("lacks glyphs" in r for _, r in unused)
    assert len(by_lang["zh"]) == 10
