"""Bounds that keep every labelled line readable, set by what each effect does to the lines of a page.

SynthDoG samples sizes and effects blindly, so a label can sit on ink no reader can make out (tiny
text under a strong perspective, a blur wider than the strokes, text in a deep shadow). Here the
effects keep SynthDoG's ranges and are only weakened where they would break a line:
- size: the layout's smallest text and each block's face are chosen so that the language's reference
  glyph (x-height, an ideograph) and the face's stems stay above the minimum after the warp, taking
  the smallest local scale of the document-to-output homography;
- blur: Gaussian and motion blur together spread ink by at most a share of the page's thinnest stem
  (both shrunk by one factor, the motion streak to a fractional length);
- contrast: the paper minus ink luminance under every line, carried through the colour shift, the
  shadow where the line lies, contrast and brightness, stays above the minimum; the shadow, then the
  brightness, then the colour shift are weakened step by step until it does, and lines whose ink is
  still too light get darker ink.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

from vlforge.synthdog.config import Legibility
from vlforge.synthdog.effects import CanvasEffects, motion_kernel, shadow_axis, shadow_profile, shift_color, tone
from vlforge.synthdog.fonts import FaceMetrics
from vlforge.synthdog.geometry import box_corners
from vlforge.synthdog.images import paper_tone

WEAKER = (0.75, 0.5, 0.25, 0.0)  # strength factors tried, in order, on an effect that breaks a line
_LUMA = (0.299, 0.587, 0.114)


def min_scale(matrix: np.ndarray, size: tuple[int, int]) -> float:
    """The smallest factor by which the homography shrinks any direction anywhere on a document of `size`
    (the least singular value of its Jacobian, which for a homography is least at a corner)."""
    scales = []
    for x, y in box_corners(0, 0, *size):
        w = matrix[2, 0] * x + matrix[2, 1] * y + matrix[2, 2]
        u = (matrix[0, 0] * x + matrix[0, 1] * y + matrix[0, 2]) / w
        v = (matrix[1, 0] * x + matrix[1, 1] * y + matrix[1, 2]) / w
        jacobian = np.array([[matrix[0, 0] - u * matrix[2, 0], matrix[0, 1] - u * matrix[2, 1]],
                             [matrix[1, 0] - v * matrix[2, 0], matrix[1, 1] - v * matrix[2, 1]]]) / w
        scales.append(np.linalg.svd(jacobian, compute_uv=False)[-1])
    return float(min(scales))


def min_font_size(metrics: FaceMetrics, glyph_px: float, cfg: Legibility, scale: float) -> float:
    """The smallest font size (document pixels) whose reference glyph and stems meet the bounds after
    a warp that shrinks by `scale`."""
    return max(glyph_px / metrics.glyph, cfg.stroke_px / metrics.stroke) / max(scale, 1e-6)


def motion_spread(k: float, angle: float) -> float:
    """How far a motion blur kernel spreads ink: the root mean square distance of its weights."""
    n = 3 if k <= 3 else 5
    weights = np.array(motion_kernel(k, angle)).reshape(n, n)
    ys, xs = np.mgrid[:n, :n] - (n - 1) / 2
    return float(np.sqrt((weights * (xs * xs + ys * ys)).sum()))


def bound_blur(fx: CanvasEffects, stroke: float, cfg: Legibility) -> CanvasEffects:
    """The effects with the Gaussian sigma and the motion streak shrunk by one factor, so that together
    they spread ink by at most cfg.blur_per_stroke of the thinnest stem on the page (`stroke`, output px)."""
    sigma = fx.gaussian_blur or 0.0
    k, angle = fx.motion_blur or (1.0, 0.0)
    spread = motion_spread(k, angle) if k > 1 else 0.0
    budget = cfg.blur_per_stroke * stroke
    total = math.hypot(sigma, spread)
    if total <= budget:
        return fx
    factor = budget / total
    blur = None if fx.gaussian_blur is None else sigma * factor
    motion = fx.motion_blur
    if motion is not None:
        lo, hi = 1.0, float(k)  # the longest streak whose spread fits its share (spread grows with length)
        for _ in range(16):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if motion_spread(mid, angle) <= spread * factor else (lo, mid)
        motion = (lo, angle)
    return dataclasses.replace(fx, motion_blur=motion, gaussian_blur=blur)


def _luma(rgb: Sequence[float]) -> float:
    return sum(w * c for w, c in zip(_LUMA, rgb, strict=True))


def shown(rgb: Sequence[float], shade: float, fx: CanvasEffects) -> float:
    """Luminance of a document colour on the output, through the colour shift, a shadow of darkness
    `shade` (0-255), contrast and brightness."""
    values = list(rgb)
    if fx.color is not None:
        target, alpha = fx.color
        values = [shift_color(v, t, alpha) for v, t in zip(values, target, strict=True)]
    if fx.shadow is not None and fx.shadow[0] > 0:
        values = [v * (255 - shade) / 255 for v in values]
    return _luma([tone(v, fx.contrast, fx.brightness) for v in values])


def shadow_reach(quads: Sequence[np.ndarray], size: tuple[int, int], shadow: tuple | None) -> list[float]:
    """How deep the shadow gets on each quad of the output: its profile's deepest point there (0-1, before
    the shadow's intensity)."""
    if shadow is None:
        return [0.0] * len(quads)
    side = max(size)
    profile = shadow_profile(side, *shadow[1:5])
    a, b, c = shadow_axis(size, shadow[5])
    reach = []
    for quad in quads:
        columns = a * quad[:, 0] + b * quad[:, 1] + c - side
        lo, hi = np.clip([math.floor(columns.min()), math.ceil(columns.max())], 0, side - 1)
        reach.append(float(profile[int(lo):int(hi) + 1].max()))
    return reach


@dataclasses.dataclass(frozen=True)
class LineTones:
    paper: tuple[float, float, float]  # the darkest paper colour under the line
    ink: tuple[int, int, int]
    reach: float  # how deep the shadow gets on the line, 0-1 of its intensity


def contrast(line: LineTones, fx: CanvasEffects) -> float:
    shade = line.reach * fx.shadow[0] if fx.shadow is not None else 0.0
    return shown(line.paper, shade, fx) - shown(line.ink, shade, fx)


def _weakened(fx: CanvasEffects, name: str, factor: float) -> CanvasEffects:
    if name == "shadow":
        return dataclasses.replace(fx, shadow=(int(fx.shadow[0] * factor), *fx.shadow[1:]))
    if name == "brightness":
        return dataclasses.replace(fx, brightness=int(fx.brightness * factor))
    rgb, alpha = fx.color
    return dataclasses.replace(fx, color=(rgb, alpha * factor))


def bound_contrast(fx: CanvasEffects, lines: Sequence[LineTones], cfg: Legibility) -> CanvasEffects:
    """The effects with the shadow, then brightness, then colour shift weakened (in WEAKER steps) until
    every line keeps cfg.contrast; what the effects cannot fix is left to `darker_ink`."""
    def ok(candidate: CanvasEffects) -> bool:
        return all(contrast(line, candidate) >= cfg.contrast for line in lines)

    for name in ("shadow", "brightness", "color"):
        if ok(fx):
            break
        if getattr(fx, name) is not None:
            weaker = [_weakened(fx, name, factor) for factor in WEAKER]
            fx = next((candidate for candidate in weaker if ok(candidate)), weaker[-1])
    return fx


def darker_ink(line: LineTones, fx: CanvasEffects, cfg: Legibility) -> tuple[int, int, int]:
    """The line's ink colour, moved towards black in WEAKER steps until the line keeps cfg.contrast."""
    ink = line.ink
    for factor in (1.0, *WEAKER):
        ink = tuple(round(c * factor) for c in line.ink)
        if contrast(dataclasses.replace(line, ink=ink), fx) >= cfg.contrast:
            break
    return ink


def paper_under(texture: np.ndarray, crop: tuple[int, int, int, int], doc: tuple[int, int],
                box: tuple[int, int, int, int], alpha: float, tint: Sequence[int]) -> tuple[float, float, float]:
    """The darkest paper colour under a document box: the paper texture's darkest pixel in the part of
    its crop that is stretched over the box, at the paper's opacity and tint."""
    cx0, cy0, cx1, cy1 = crop
    sx, sy = (cx1 - cx0) / doc[0], (cy1 - cy0) / doc[1]
    x0, y0, x1, y1 = box
    region = texture[int(cy0 + y0 * sy):math.ceil(cy0 + y1 * sy) + 1, int(cx0 + x0 * sx):math.ceil(cx0 + x1 * sx) + 1]
    darkest = float(region.min()) if region.size else 255.0
    return tuple(paper_tone(darkest, alpha, t) for t in tint)
