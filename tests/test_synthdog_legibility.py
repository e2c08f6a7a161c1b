"""Legibility bounds, checked on generated pages by measurements of their own: glyphs drawn by plain PIL
from the recorded font and warped, stems measured with a distance transform, the blur's point spread
measured on an impulse, ink and paper luminance read from the rendered page."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from test_synthdog_support import resources

from vlforge.synthdog import geometry as G
from vlforge.synthdog.config import load_config
from vlforge.synthdog.effects import CanvasEffects, apply_canvas_effects, elastic
from vlforge.synthdog.legibility import bound_blur, min_scale
from vlforge.synthdog.render import draw_lines, render, warp
from vlforge.synthdog.sample import plan_with_text

DEFAULT = load_config({})
# SynthDoG's effects at their strongest: deep shadows, dark brightness, heavy perspective, full blur.
HARSH = load_config({
    "document": {"perspective": {"weights": [1], "percents": [[[0.5, 0.6], [0.5, 0.6], [0.5, 0.6], [0.5, 0.6]]]}},
    "effects": {"shadow": {"intensity": [160, 160], "amount": [0.6, 1.0]}, "brightness": {"beta": [-48, -48]},
                "contrast": {"alpha": [1.5, 1.5]}, "motion_blur": {"prob": 1.0, "k": [5, 5]},
                "gaussian_blur": {"sigma": [1.5, 1.5]}},
})
REFERENCE = {"en": "x", "zh": "中"}


def _font(res, line, scale: int = 1) -> ImageFont.FreeTypeFont:
    face = res.fonts.faces[line.face]
    return ImageFont.truetype(face.path, line.size * scale, index=face.index, layout_engine=ImageFont.Layout.BASIC)


def _stem_width(text: str, res, line, scale: int = 8) -> float:
    """Median stem width of the text in document pixels: drawn `scale` times larger, twice the distance
    transform on the ink's ridge (its local maxima)."""
    font = _font(res, line, scale)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 4, bottom - top + 4))
    ImageDraw.Draw(image).text((2 - left, 2 - top), text, font=font, fill=255)
    ink = np.asarray(image) >= 128
    distance = ndimage.distance_transform_edt(ink)
    ridge = ink & (distance >= ndimage.maximum_filter(distance, 3))
    return float(2 * np.median(distance[ridge])) / scale


def _warped_glyph_heights(plan, res, line, char: str) -> list[float]:
    """Ink height (output pixels, rows at least half covered) of `char` drawn at the line's size at its
    left end, middle and right end, through the page's warp."""
    font = _font(res, line)
    heights = []
    x0, _, x1, _ = line.ink
    for x in (x0, (x0 + x1) // 2, max(x1 - font.getbbox(char)[2], x0)):
        layer = Image.new("L", plan.doc_size)
        ImageDraw.Draw(layer).text((x, line.origin[1]), char, font=font, fill=255)
        rows = np.flatnonzero(np.asarray(warp(layer, plan)).max(axis=1) >= 128)
        heights.append(float(rows[-1] - rows[0] + 1))
    return heights


@pytest.mark.parametrize("config", [DEFAULT, HARSH], ids=["synthdog", "harsh"])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_reference_glyphs_stay_tall_enough_after_the_warp(config, lang):
    res = resources(config)
    bound = getattr(config.legibility.glyph_px, lang)
    heights = []
    for index in range(4):
        plan = plan_with_text(lang, 21, index, config, res)
        for line in plan.lines[::3]:
            heights += _warped_glyph_heights(plan, res, line, REFERENCE[lang])
    assert len(heights) >= 12
    # 1 px: the bound is on the glyph's outline, this counts rows the warped rendering half covers
    assert min(heights) >= bound - 1, (min(heights), bound)
    if config is DEFAULT:  # sizes still vary: most text is well above the bound
        assert np.median(heights) >= bound + 2 and max(heights) >= 1.5 * bound, heights


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_stems_stay_wide_enough_after_the_warp(lang):
    res = resources(HARSH)
    widths = []
    for index in range(4):
        plan = plan_with_text(lang, 22, index, HARSH, res)
        shrink = min_scale(plan.homography, plan.doc_size)
        for line in plan.lines[::3]:
            widths.append(_stem_width(line.text, res, line) * shrink)
    assert len(widths) >= 8
    # the bound is on the face's mean stem; hairlines of serif faces are thinner, so half of it at worst
    assert min(widths) >= 0.5 * HARSH.legibility.stroke_px and np.median(widths) >= HARSH.legibility.stroke_px


def _spread(effects: CanvasEffects) -> float:
    """Root mean square spread of the page's blurs along their widest direction, measured on an impulse."""
    blur_only = CanvasEffects(None, None, None, None, effects.motion_blur, effects.gaussian_blur)
    impulse = Image.new("RGB", (41, 41))
    impulse.putpixel((20, 20), (255, 255, 255))
    psf = np.asarray(apply_canvas_effects(impulse, blur_only), dtype=np.float64)[..., 0]
    psf /= psf.sum()
    ys, xs = np.mgrid[:41, :41] - 20.0
    mx, my = (psf * xs).sum(), (psf * ys).sum()
    cov = np.cov(np.stack([(xs - mx).ravel(), (ys - my).ravel()]), aweights=psf.ravel(), bias=True)
    return float(np.sqrt(np.linalg.eigvalsh(cov)[-1]))


@pytest.mark.parametrize("config", [DEFAULT, HARSH], ids=["synthdog", "harsh"])
def test_blur_spreads_ink_less_than_a_share_of_the_thinnest_stem(config):
    res = resources(config)
    blurred = 0
    for lang in ("en", "zh"):
        for index in range(5):
            plan = plan_with_text(lang, 23, index, config, res)
            shrink = min_scale(plan.homography, plan.doc_size)
            letters = ["".join(c for c in line.text if c.isalnum()) for line in plan.lines]
            stems = [_stem_width(text, res, line) * shrink for text, line in zip(letters, plan.lines, strict=True)
                     if text]
            spread = _spread(plan.effects)
            # the page's typical stem (the bound takes each face's reference text), 25% for the difference
            assert spread <= 1.25 * config.legibility.blur_per_stroke * np.median(stems) + 0.05, (spread, stems)
            blurred += spread >= 0.25
    assert blurred >= 4  # the blur is bounded, not dropped


def _luma(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("L"), dtype=np.float64)


@pytest.mark.parametrize("config", [DEFAULT, HARSH], ids=["synthdog", "harsh"])
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_every_line_keeps_its_ink_paper_contrast(config, lang):
    """Median luminance of the paper around a line minus that of its fully inked pixels, on the rendered
    page with the blurs left out (they are bounded by the stem test above)."""
    res = resources(config)
    measured, shadowed = [], 0
    for index in range(4):
        plan = plan_with_text(lang, 24, index, config, res)
        sharp = dataclasses.replace(plan, effects=dataclasses.replace(plan.effects, motion_blur=None,
                                                                      gaussian_blur=None))
        page = _luma(render(sharp, res).image)
        layers = [draw_lines(plan.doc_size, [line], res.fonts) for line in plan.lines]
        if plan.elastic:
            layers = [elastic(layer, plan.elastic) for layer in layers]
        coverage = [np.asarray(warp(layer, plan)) for layer in layers]
        anywhere = ndimage.binary_dilation(np.max(coverage, axis=0) > 0, iterations=1)
        for line, cover in zip(plan.lines, coverage, strict=True):
            ink = cover >= 250
            if ink.sum() < 6:
                continue
            x0, y0, x1, y1 = (int(v) for v in G.bounds(G.apply(plan.homography, G.box_corners(*line.ink))))
            around = np.zeros_like(ink)
            around[max(y0 - 2, 0):y1 + 3, max(x0 - 2, 0):x1 + 3] = True
            paper = around & ~anywhere
            if paper.sum() >= 6:
                measured.append(np.median(page[paper]) - np.median(page[ink]))
        shadowed += plan.effects.shadow is not None and plan.effects.shadow[0] >= 40
    assert len(measured) >= 10
    # 6 levels: document noise and the bilinear warp around the median
    assert min(measured) >= config.legibility.contrast - 6, sorted(measured)[:5]
    if config is HARSH:
        assert shadowed >= 2  # the shadow is weakened where it would hide text, not removed


def test_min_scale_is_the_strongest_shrink_of_the_warp():
    assert min_scale(G.scaling(0.5, 2.0), (100, 50)) == pytest.approx(0.5)
    squeeze = G.quad_to_quad(G.box_corners(0, 0, 100, 80), G.perspective_quad(100, 80, [0.8, 1, 1, 0.5], [0.3] * 4))
    # finite differences: every point of a grid over the document, steps of 0.01 px in 72 directions
    angles = np.radians(np.arange(0, 180, 2.5))
    steps = 0.01 * np.c_[np.cos(angles), np.sin(angles)]
    shrinks = [np.linalg.norm(G.apply(squeeze, p + steps) - G.apply(squeeze, p[None]), axis=1).min() / 0.01
               for p in np.array(np.meshgrid(np.linspace(0, 100, 11), np.linspace(0, 80, 9))).reshape(2, -1).T]
    assert min_scale(squeeze, (100, 80)) == pytest.approx(min(shrinks), rel=0.01)
    assert min(shrinks) < 0.55


def test_blur_bound_shrinks_gaussian_and_motion_blur_together():
    fx = CanvasEffects(None, None, None, None, (5, 30.0), 1.5)
    cfg = load_config({"legibility": {"blur_per_stroke": 0.5}}).legibility
    bounded = bound_blur(fx, stroke=2.0, cfg=cfg)  # budget 1 px
    assert 1 < bounded.motion_blur[0] < 5 and 0.3 < bounded.gaussian_blur < 1.0  # both kept, both weaker
    assert 0.9 <= _spread(bounded) <= 1.0 + 0.05
    assert bound_blur(fx, stroke=100.0, cfg=cfg) == fx


def test_a_fractional_motion_streak_spreads_between_its_whole_neighbours():
    spreads = [_spread(CanvasEffects(None, None, None, None, (k, 20.0), None)) for k in (2, 2.5, 3)]
    assert spreads[0] < spreads[1] < spreads[2]
