"""Every random choice of one sample, made up front, before any pixel is drawn.

A plan depends only on its generator (seeded from seed, language, index and attempt), the config and the
resources, so a sample is the same on every worker. It holds the document's text lines with their ink
boxes and the single matrix from document pixels to output pixels, which is all the quads need.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vlforge.synthdog import config as C
from vlforge.synthdog import geometry as G
from vlforge.synthdog import legibility as L
from vlforge.synthdog.effects import (
    CanvasEffects,
    Elastic,
    Noise,
    sample_canvas_effects,
    sample_elastic,
    sample_noise,
)
from vlforge.synthdog.images import PAPER_COUNT, PAPER_SIDE, TEXTURE_COUNT, paper_texture
from vlforge.synthdog.layout import grid_stack
from vlforge.synthdog.resources import Resources
from vlforge.synthdog.sampling import chance, integer, uniform, weighted_index
from vlforge.synthdog.textfit import fit_line

Rgb = tuple[int, int, int]


@dataclass(frozen=True)
class Line:
    text: str
    face: int  # index into the font library
    size: int  # font size in pixels
    origin: tuple[int, int]  # left/ascender corner where the text is drawn, document pixels
    ink: tuple[int, int, int, int]  # box (x0, y0, x1, y1) of the drawn pixels, document pixels
    color: Rgb
    glyphs: Image.Image  # the line's coverage (L), drawn once by PIL; its top-left is at glyphs_at
    glyphs_at: tuple[int, int]


def rasterize(text: str, font: ImageFont.FreeTypeFont, origin: tuple[int, int],
              ) -> tuple[Image.Image, tuple[int, int], tuple[int, int, int, int]]:
    """The line drawn by PIL in one call: (coverage image, its position, ink box), document pixels.

    The ink box comes from the pixels: PIL's getbbox spans advance widths, so a full-width comma
    would get a box four times wider than its ink."""
    left, top, right, bottom = font.getbbox(text)
    glyphs = Image.new("L", (max(right - left, 1), max(bottom - top, 1)))
    ImageDraw.Draw(glyphs).text((-left, -top), text, font=font, fill=255)
    at = (origin[0] + left, origin[1] + top)
    x0, y0, x1, y1 = glyphs.getbbox() or (0, 0, 0, 0)
    return glyphs, at, (at[0] + x0, at[1] + y0, at[0] + x1, at[1] + y1)


@dataclass(frozen=True)
class BackgroundPlan:
    photo: int | None  # index into the photographs, or None for a generated texture
    texture: int
    crop: tuple[float, float]  # where the crop of the canvas' aspect sits, as fractions of the free room
    blur: float  # Gaussian sigma in output pixels


@dataclass(frozen=True)
class PaperPlan:
    texture: int
    crop: tuple[int, int, int, int]  # box in the texture
    alpha: float  # texture opacity over white
    tint: Rgb | None


@dataclass(frozen=True)
class Plan:
    attempt: int
    size: tuple[int, int]  # output (width, height)
    background: BackgroundPlan
    doc_size: tuple[int, int]
    paper: PaperPlan
    lines: tuple[Line, ...]
    elastic: Elastic | None
    noise: Noise | None
    matrix: tuple[float, ...]  # 3x3 row-major homography, document pixels -> output pixels
    effects: CanvasEffects
    quality: int

    @property
    def homography(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.float64).reshape(3, 3)

    def quads(self) -> list[np.ndarray]:
        """Each line's quad (TL, TR, BR, BL) in output pixels: its ink box, grown by the most the elastic
        distortion can move ink, through the document-to-output homography."""
        grow = self.elastic.alpha if self.elastic else 0.0
        h = self.homography
        return [G.apply(h, G.box_corners(x0 - grow, y0 - grow, x1 + grow, y1 + grow))
                for x0, y0, x1, y1 in (line.ink for line in self.lines)]


def _canvas(rng: np.random.Generator, cfg: C.Canvas) -> tuple[tuple[int, int], tuple[int, int], float]:
    """(SynthDoG-pixel canvas size, output size, output pixels per SynthDoG pixel)."""
    short = integer(rng, cfg.short_size)
    if cfg.size is not None:
        return (short, short), (cfg.size, cfg.size), cfg.size / short
    landscape = chance(rng, cfg.landscape)
    long = int(short * uniform(rng, cfg.aspect_ratio))
    size = (long, short) if landscape else (short, long)
    return size, size, 1.0


def _document_size(rng: np.random.Generator, cfg: C.Document, canvas: tuple[int, int]) -> tuple[int, int]:
    """SynthDoG's Document.generate: full-screen, or a random orientation, short side and aspect."""
    width, height = canvas
    if chance(rng, cfg.fullscreen):
        return canvas
    landscape = chance(rng, cfg.landscape)
    max_size = width if landscape else height
    low, high = min(width, height, cfg.short_size[0]), min(width, height, cfg.short_size[1])
    short = integer(rng, (low, high))
    room = max_size / short
    ratio = uniform(rng, (min(room, cfg.aspect_ratio[0]), min(room, cfg.aspect_ratio[1])))
    long = int(short * ratio)
    return (long, short) if landscape else (short, long)


def _gray_color(rng: np.random.Generator, cfg: C.TextColor) -> Rgb:
    """synthtiger's Gray with colorize: a colour of the sampled luma, or the grey itself."""
    gray = integer(rng, cfg.gray)
    if not chance(rng, cfg.colorize):
        return (gray, gray, gray)
    while True:  # uniform over the (r, g) pairs for which some b gives that luma, as synthtiger
        r, g = rng.integers(256, size=(2, 1024))
        b = np.round((gray - r * 0.2989 - g * 0.5870) / 0.1140)
        valid = np.flatnonzero((b >= 0) & (b < 256))
        if valid.size:
            i = valid[0]
            return (int(r[i]), int(g[i]), int(b[i]))


def _lines(rng: np.random.Generator, cfg: C.Content, res: Resources, lang: str,
           doc: tuple[int, int], min_size: dict[int, float]) -> list[Line]:
    """The text lines; a block's face is drawn among those legible at its size (min_size: face ->
    smallest legible font size), and no block is smaller than the most legible face needs."""
    width, height = doc
    left, top = width * uniform(rng, cfg.margin), height * uniform(rng, cfg.margin)
    box = (left, top, max(width - 2 * left, 0), max(height - 2 * top, 0))
    legible_text = min((math.ceil(size) + 0.01) * res.fonts.metrics(face, lang).line for face, size in min_size.items())
    blocks = grid_stack(rng, box, cfg.layout, max(cfg.layout.min_text_px, legible_text))
    corpus = res.corpora[lang]
    pos = corpus.start(rng)
    lines = []
    for block in blocks:
        text_size = block.cells[0].h
        faces = [f for f, size in min_size.items() if res.fonts.size_for_height(f, text_size) >= size]
        faces = faces or [min(min_size, key=min_size.get)]
        face = faces[int(rng.integers(len(faces)))]
        codepoints = res.fonts.cmaps[face]
        for cell in block.cells:
            size = res.fonts.size_for_height(face, cell.h)
            font = res.fonts.sized(face, size)
            room = float(np.clip(cell.w * uniform(rng, cfg.textbox_fill), cell.h, cell.w))
            fitted = fit_line(corpus, pos, font, codepoints, room)
            pos = fitted.next_pos
            color = _gray_color(rng, cfg.textbox_color) if chance(rng, cfg.textbox_color.prob) else (0, 0, 0)
            if not fitted.text:
                continue
            ascent, descent = font.font.getmetrics()
            x = {"left": cell.x, "right": cell.x + cell.w - fitted.width,
                 "center": cell.x + (cell.w - fitted.width) / 2}[cell.align]
            origin = (round(x), round(cell.y + (cell.h - ascent - descent) / 2))
            glyphs, glyphs_at, ink = rasterize(fitted.text, font.font, origin)
            lines.append(Line(fitted.text, face, size, origin, ink, color, glyphs, glyphs_at))
    if lines and chance(rng, cfg.content_color.prob):
        color = _gray_color(rng, cfg.content_color)
        lines = [dataclasses.replace(line, color=color) for line in lines]
    return lines


def _paper(rng: np.random.Generator, cfg: C.Paper) -> PaperPlan:
    """SynthDoG's paper: a random crop of a grey texture over white (crop sizes from 8 px up)."""
    w, h = integer(rng, (8, PAPER_SIDE)), integer(rng, (8, PAPER_SIDE))
    x, y = integer(rng, (0, PAPER_SIDE - w)), integer(rng, (0, PAPER_SIDE - h))
    texture = int(rng.integers(PAPER_COUNT))
    alpha = uniform(rng, cfg.alpha)
    tint = tuple(integer(rng, span) for span in cfg.tint.rgb) if chance(rng, cfg.tint.prob) else None
    return PaperPlan(texture, (x, y, x + w, y + h), alpha, tint)


def _document_matrix(rng: np.random.Generator, cfg: C.Document, doc: tuple[int, int],
                     out: tuple[int, int]) -> np.ndarray:
    """Perspective, optional rotation, shrink-to-fit, then a random placement inside the output."""
    w, h = doc
    corners = G.box_corners(0, 0, w, h)
    matrix = np.eye(3)
    if chance(rng, cfg.perspective.prob):
        option = weighted_index(rng, cfg.perspective.weights)
        percents = [uniform(rng, span) for span in cfg.perspective.percents[option]]
        aligns = [uniform(rng, (-1, 1)) for _ in range(4)]
        matrix = G.quad_to_quad(corners, G.perspective_quad(w, h, percents, aligns))
    if chance(rng, cfg.rotation.prob):
        matrix = G.rotation(uniform(rng, cfg.rotation.angle), w / 2, h / 2) @ matrix
    x0, y0, x1, y1 = G.bounds(G.apply(matrix, corners))
    fit = min(1.0, out[0] / (x1 - x0), out[1] / (y1 - y0))
    matrix = G.scaling(fit, fit) @ G.translation(-x0, -y0) @ matrix
    room_x, room_y = out[0] - fit * (x1 - x0), out[1] - fit * (y1 - y0)
    left, top = uniform(rng, (0, max(room_x, 0))), uniform(rng, (0, max(room_y, 0)))
    return G.translation(left, top) @ matrix


def plan_sample(rng: np.random.Generator, lang: str, attempt: int, cfg: C.SynthConfig,
                res: Resources) -> Plan:
    virtual, out, scale = _canvas(rng, cfg.canvas)
    photo = None
    if res.photos and not chance(rng, cfg.background.texture_prob):
        photo = int(rng.integers(len(res.photos)))
    texture = int(rng.integers(TEXTURE_COUNT))
    crop = (float(rng.random()), float(rng.random()))
    blur = uniform(rng, cfg.background.blur.sigma) * scale if chance(rng, cfg.background.blur.prob) else 0.0
    background = BackgroundPlan(photo, texture, crop, blur)

    doc_virtual = _document_size(rng, cfg.document, virtual)
    doc = (max(1, round(doc_virtual[0] * scale)), max(1, round(doc_virtual[1] * scale)))
    matrix = _document_matrix(rng, cfg.document, doc, out)
    shrink = L.min_scale(matrix, doc)
    glyph_px = getattr(cfg.legibility.glyph_px, lang)
    min_size = {face: L.min_font_size(res.fonts.metrics(face, lang), glyph_px, cfg.legibility, shrink)
                for face in res.fonts.faces_for(lang)}
    lines = _lines(rng, cfg.document.content, res, lang, doc, min_size)
    paper = _paper(rng, cfg.document.paper)
    elastic = sample_elastic(rng, cfg.document.elastic, scale)
    noise = sample_noise(rng, cfg.document.noise)
    effects = sample_canvas_effects(rng, cfg.effects, scale)
    quality = integer(rng, cfg.canvas.quality)
    lines, effects = _legible(lines, effects, res, lang, paper, doc, matrix, out, shrink, cfg.legibility)
    return Plan(attempt, out, background, doc, paper, tuple(lines), elastic, noise,
                tuple(float(v) for v in matrix.flatten()), effects, quality)


def _legible(lines: list[Line], fx: CanvasEffects, res: Resources, lang: str, paper: PaperPlan,
             doc: tuple[int, int], matrix: np.ndarray, out: tuple[int, int], shrink: float,
             cfg: C.Legibility) -> tuple[list[Line], CanvasEffects]:
    """The page's blur and tone effects bounded by what they do to its lines (see legibility)."""
    if not lines:
        return lines, fx
    stroke = min(res.fonts.metrics(line.face, lang).stroke * line.size for line in lines) * shrink
    fx = L.bound_blur(fx, stroke, cfg)
    texture = np.asarray(paper_texture(paper.texture))
    tint = paper.tint or (255, 255, 255)
    reach = L.shadow_reach([G.apply(matrix, G.box_corners(*line.ink)) for line in lines], out, fx.shadow)
    tones = [L.LineTones(L.paper_under(texture, paper.crop, doc, line.ink, paper.alpha, tint), line.color, depth)
             for line, depth in zip(lines, reach, strict=True)]
    fx = L.bound_contrast(fx, tones, cfg)
    inks = [L.darker_ink(tone, fx, cfg) for tone in tones]
    return [dataclasses.replace(line, color=ink) for line, ink in zip(lines, inks, strict=True)], fx

