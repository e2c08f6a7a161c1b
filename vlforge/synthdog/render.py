"""Pixels from a plan: background, paper, text, document effects, one warp, image effects.

Each line was drawn by one PIL call when it was planned (SynthDoG makes a float32 RGBA layer per
character and merges them with numpy, its main cost); here the lines are pasted into one coverage
mask and coloured from a flat layer, so the elastic distortion touches one band. The document is
resampled once, through the same matrix that maps the line boxes to their quads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from vlforge.synthdog.effects import add_noise, apply_canvas_effects, elastic
from vlforge.synthdog.fonts import FontLibrary
from vlforge.synthdog.geometry import pil_coefficients
from vlforge.synthdog.images import BadImage, background_texture, paper_texture, paper_tone
from vlforge.synthdog.plan import Line, PaperPlan, Plan
from vlforge.synthdog.resources import Resources

TextRenderer = Callable[[tuple[int, int], Sequence[Line], FontLibrary], Image.Image]


def draw_lines(size: tuple[int, int], lines: Sequence[Line], fonts: FontLibrary) -> Image.Image:
    """Ink coverage of all lines in one L image: each line's PIL rendering from the plan, pasted."""
    mask = Image.new("L", size)
    for line in lines:
        x, y = line.glyphs_at
        mask.paste(255, (x, y, x + line.glyphs.width, y + line.glyphs.height), line.glyphs)
    return mask


def color_layer(size: tuple[int, int], lines: Sequence[Line], margin: int) -> Image.Image:
    """The colour under each line's ink: the commonest line colour everywhere, others in their boxes."""
    counts = Counter(line.color for line in lines)
    base = counts.most_common(1)[0][0] if counts else (0, 0, 0)
    layer = Image.new("RGB", size, base)
    draw = ImageDraw.Draw(layer)
    for line in lines:
        if line.color != base:
            x0, y0, x1, y1 = line.ink
            draw.rectangle((x0 - margin, y0 - margin, x1 + margin, y1 + margin), fill=line.color)
    return layer


def paper_image(paper: PaperPlan, size: tuple[int, int]) -> Image.Image:
    """Grey texture at `alpha` over white, optionally tinted, in one lookup table."""
    texture = paper_texture(paper.texture).resize(size, Image.Resampling.BILINEAR, box=paper.crop)
    tint = paper.tint or (255, 255, 255)
    lut = [round(paper_tone(v, paper.alpha, t)) for t in tint for v in range(256)]
    return texture.convert("RGB").point(lut)


def warp(layer: Image.Image, plan: Plan) -> Image.Image:
    """A document-pixel layer moved onto the output through the plan's homography."""
    return layer.transform(plan.size, Image.Transform.PERSPECTIVE, pil_coefficients(plan.homography),
                           Image.Resampling.BILINEAR)


@dataclass(frozen=True)
class Background:
    image: Image.Image
    label: str  # photo file name or texture:N
    unreadable: int  # photos that failed to decode and were passed over


def background(plan: Plan, res: Resources) -> Background:
    """The photo (or the next readable one, or a generated texture), cropped to the output's aspect,
    resized and blurred. Large blurs run at a reduced size: the result is smooth either way."""
    bg = plan.background
    source, label, unreadable = None, f"texture:{bg.texture}", 0
    if bg.photo is not None:
        for k in range(len(res.photos)):
            path = res.photos[(bg.photo + k) % len(res.photos)]
            try:
                source = res.images.get(path)
            except BadImage:
                unreadable += 1
                continue
            label = Path(path).name
            break
    if source is None:
        source = background_texture(bg.texture)
    width, height = plan.size
    crop_w = min(source.width, source.height * width / height)
    crop_h = crop_w * height / width
    x, y = bg.crop[0] * (source.width - crop_w), bg.crop[1] * (source.height - crop_h)
    reduce = float(np.clip(bg.blur / 2, 1, 8))
    small = (max(1, round(width / reduce)), max(1, round(height / reduce)))
    image = source.resize(small, Image.Resampling.BILINEAR, box=(x, y, x + crop_w, y + crop_h))
    if bg.blur >= 0.1:
        image = image.filter(ImageFilter.GaussianBlur(bg.blur / reduce))
    if small != plan.size:
        image = image.resize(plan.size, Image.Resampling.BILINEAR)
    return Background(image, label, unreadable)


def document(plan: Plan, res: Resources, text_renderer: TextRenderer = draw_lines) -> Image.Image:
    """Paper with the text composited in its colours, then the document noise; RGB, document pixels."""
    paper = paper_image(plan.paper, plan.doc_size)
    mask = text_renderer(plan.doc_size, plan.lines, res.fonts)
    if plan.elastic:
        mask = elastic(mask, plan.elastic)
    margin = 1 if plan.elastic else 0
    doc = Image.composite(color_layer(plan.doc_size, plan.lines, margin), paper, mask)
    return add_noise(doc, plan.noise) if plan.noise else doc


@dataclass(frozen=True)
class Rendered:
    image: Image.Image
    background: str
    unreadable_backgrounds: int


def render(plan: Plan, res: Resources, text_renderer: TextRenderer = draw_lines) -> Rendered:
    bg = background(plan, res)
    doc = document(plan, res, text_renderer)
    doc.putalpha(255)
    warped = warp(doc, plan)
    canvas = bg.image
    canvas.paste(warped, (0, 0), warped)
    return Rendered(apply_canvas_effects(canvas, plan.effects), bg.label, bg.unreadable)
