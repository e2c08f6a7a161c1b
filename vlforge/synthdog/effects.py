"""SynthDoG's effects, each sampled once (plain parameters in the plan) and applied with PIL/numpy.

Document effects (elastic distortion, Gaussian noise) act on the document layer before it is warped;
image effects (colour shift, shadow, contrast, brightness, motion blur, Gaussian blur) on the whole
canvas, in SynthDoG's order. Pixel sizes are given in SynthDoG's pixels and multiplied by `scale`,
the output size over SynthDoG's canvas size. Per-pixel operations are lookup tables or single PIL
calls; SynthDoG runs each through float32 numpy arrays and imgaug.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from vlforge.synthdog import config as C
from vlforge.synthdog.images import NOISE_SIDE, noise_window
from vlforge.synthdog.sampling import chance, integer, uniform

MAX_ELASTIC_PX = 1.0  # the resampler moves ink by at most one pixel; quads grow by the amplitude


@dataclass(frozen=True)
class Elastic:
    alpha: float  # displacement amplitude in document pixels, at most MAX_ELASTIC_PX
    sigma: float  # smoothing of the displacement field, document pixels
    offsets: tuple[int, int, int, int]  # noise-bank windows for the x and y fields


@dataclass(frozen=True)
class Noise:
    scale: float
    offset: tuple[int, int]


def sample_elastic(rng: np.random.Generator, cfg: C.Elastic, scale: float) -> Elastic | None:
    if not chance(rng, cfg.prob):
        return None
    alpha = min(uniform(rng, cfg.alpha) * scale, MAX_ELASTIC_PX)
    sigma = uniform(rng, cfg.sigma) * scale
    offsets = tuple(int(v) for v in rng.integers(NOISE_SIDE, size=4))
    return Elastic(alpha, sigma, offsets)


def sample_noise(rng: np.random.Generator, cfg: C.Noise) -> Noise | None:
    if not chance(rng, cfg.prob):
        return None
    return Noise(uniform(rng, cfg.scale), tuple(int(v) for v in rng.integers(NOISE_SIDE, size=2)))


def _smooth3(field: np.ndarray, sigma: float) -> np.ndarray:
    """Separable 3-tap Gaussian; enough for SynthDoG's sigma <= 0.5 px, and keeps values in [-1, 1]."""
    if sigma <= 0.05:
        return field
    side = math.exp(-1 / (2 * sigma * sigma))
    w = side / (1 + 2 * side)
    out = field * (1 - 2 * w)
    out[:, 1:] += w * field[:, :-1]
    out[:, :-1] += w * field[:, 1:]
    vertical = out * (1 - 2 * w)
    vertical[1:] += w * out[:-1]
    vertical[:-1] += w * out[1:]
    return vertical


def _shift(a: np.ndarray, axis: int, step: int) -> np.ndarray:
    """a moved by one pixel (edge repeated): out[i] = a[i + step] along axis."""
    n = a.shape[axis]
    return np.take(a, np.clip(np.arange(n) + step, 0, n - 1), axis=axis)


def elastic(mask: Image.Image, params: Elastic) -> Image.Image:
    """Move every pixel of a single-band layer by a random sub-pixel offset (at most params.alpha).

    Each output pixel blends its neighbour in the direction of its offset, first along x then y,
    which is bilinear resampling for displacements below one pixel.
    """
    h, w = mask.height, mask.width
    ya, xa, yb, xb = params.offsets
    fields = []
    for top, left in ((ya, xa), (yb, xb)):
        raw = np.clip(noise_window(h, w, top, left) * 0.5, -1, 1)
        fields.append(_smooth3(raw, params.sigma) * params.alpha)
    dx, dy = fields
    a = np.asarray(mask, dtype=np.float32)
    a = a + np.abs(dx) * (np.where(dx > 0, _shift(a, 1, 1), _shift(a, 1, -1)) - a)
    a = a + np.abs(dy) * (np.where(dy > 0, _shift(a, 0, 1), _shift(a, 0, -1)) - a)
    return Image.fromarray(np.clip(a + 0.5, 0, 255).astype(np.uint8), mode="L")


def add_noise(image: Image.Image, params: Noise) -> Image.Image:
    """Additive Gaussian noise, the same on all channels (SynthDoG's per_channel: 0)."""
    window = noise_window(image.height, image.width, *params.offset)
    shifted = np.clip(128 + window * params.scale + 0.5, 0, 255).astype(np.uint8)
    noise = Image.fromarray(shifted, mode="L").convert(image.mode)
    return ImageChops.add(image, noise, 1.0, -128)


@dataclass(frozen=True)
class CanvasEffects:
    color: tuple[tuple[int, int, int], float] | None  # rgb, alpha
    # intensity, amount, smoothing, bidirectional, align, angle
    shadow: tuple[int, float, float, bool, float, float] | None
    contrast: float | None
    brightness: int | None
    motion_blur: tuple[float, float] | None  # streak length in output pixels, angle
    gaussian_blur: float | None  # sigma in output pixels


def sample_canvas_effects(rng: np.random.Generator, cfg: C.Effects, scale: float) -> CanvasEffects:
    color = shadow = contrast = brightness = motion = blur = None
    if chance(rng, cfg.color.prob):
        rgb = tuple(integer(rng, span) for span in cfg.color.rgb)
        color = (rgb, uniform(rng, cfg.color.alpha))
    if chance(rng, cfg.shadow.prob):
        s = cfg.shadow
        shadow = (integer(rng, s.intensity), uniform(rng, s.amount), uniform(rng, s.smoothing),
                  chance(rng, s.bidirectional), uniform(rng, s.align), uniform(rng, s.angle))
    if chance(rng, cfg.contrast.prob):
        contrast = uniform(rng, cfg.contrast.alpha)
    if chance(rng, cfg.brightness.prob):
        brightness = integer(rng, (math.floor(cfg.brightness.beta[0]), math.floor(cfg.brightness.beta[1])))
    if chance(rng, cfg.motion_blur.prob):
        motion = (max(1, round(integer(rng, cfg.motion_blur.k) * scale)), uniform(rng, cfg.motion_blur.angle))
    if chance(rng, cfg.gaussian_blur.prob):
        blur = uniform(rng, cfg.gaussian_blur.sigma) * scale
    return CanvasEffects(color, shadow, contrast, brightness, motion, blur)


def shift_color(value: float, target: int, alpha: float) -> float:
    """The colour shift on one channel: the value blended towards the target channel."""
    return value * (1 - alpha) + target * alpha


def tone(value: float, contrast: float | None, brightness: int | None) -> float:
    """Contrast then brightness on one value, clipped after each as SynthDoG does."""
    x = float(value)
    if contrast is not None:
        x = min(255.0, max(0.0, contrast * x - 128 * (contrast - 1)))
    if brightness is not None:
        x = min(255.0, max(0.0, x + brightness))
    return x


def _color_lut(rgb: tuple[int, int, int], alpha: float) -> list[int]:
    return [min(255, max(0, round(shift_color(v, c, alpha)))) for c in rgb for v in range(256)]


def _tone_lut(contrast: float | None, brightness: int | None) -> list[int]:
    return [round(tone(v, contrast, brightness)) for v in range(256)] * 3


def _ease_in_out_quad(t: np.ndarray) -> np.ndarray:
    return np.where(t < 0.5, 2 * t * t, -2 * t * t + 4 * t - 1)


def shadow_profile(length: int, amount: float, smoothing: float, bidirectional: bool,
                   align: float) -> np.ndarray:
    """SynthDoG's Shadow: darkness in [0, 1] along the shadow direction, eased at its soft edges."""
    if bidirectional:
        start = (1 - amount) / 2 + (1 - amount) / 2 * align
        end = (1 + amount) / 2 + (1 - amount) / 2 * align
        grad_start, grad_end = start - amount / 2 * smoothing, end + amount / 2 * smoothing
        peak_start, peak_end = start + amount / 2 * smoothing, end - amount / 2 * smoothing
    else:
        start, end = 1 - amount, 1.0
        grad_start, grad_end = start - min(amount, 1 - amount) * smoothing, end
        peak_start, peak_end = start + min(amount, 1 - amount) * smoothing, end
    t = (np.arange(length) + 0.5) / length
    rise = np.clip((t - grad_start) / max(peak_start - grad_start, 1e-9), 0, 1)
    fall = np.clip((grad_end - t) / max(grad_end - peak_end, 1e-9), 0, 1)
    return np.where(t < peak_start, _ease_in_out_quad(rise),
                    np.where(t > peak_end, _ease_in_out_quad(fall), 1.0))


def _shadow_mask(size: tuple[int, int], params: tuple) -> Image.Image:
    """The profile laid across the canvas at `angle`, as an L mask (255 = black).

    As SynthDoG: a square whose columns follow the profile, rotated about its centre and shrunk by
    `scale` so it still covers the square (cv2.getRotationMatrix2D), edges repeated, resized to the
    canvas. Here one affine transform of the 1-pixel-high profile does all of it.
    """
    intensity, amount, smoothing, bidirectional, align, angle = params
    side = max(size)
    values = shadow_profile(side, amount, smoothing, bidirectional, align) * intensity
    values = np.clip(values + 0.5, 0, 255).astype(np.uint8)
    padded = np.concatenate([np.full(side, values[0]), values, np.full(side, values[-1])]).astype(np.uint8)
    profile = Image.fromarray(padded[None, :], mode="L")
    coeffs = (*shadow_axis(size, angle), 0, 0, 0.5)
    return profile.transform(size, Image.Transform.AFFINE, coeffs, Image.Resampling.BILINEAR)


def shadow_axis(size: tuple[int, int], angle: float) -> tuple[float, float, float]:
    """(a, b, c): canvas point (x, y) lies on profile column a*x + b*y + c - side (edges repeated beyond).

    canvas (x, y) -> square (x*side/width, y*side/height) -> inverse rotation -> profile column (+ pad)."""
    width, height = size
    side = max(width, height)
    a = math.radians(angle)
    scale = abs(math.sin(a)) + abs(math.cos(a))
    cos, sin = math.cos(a) / scale, math.sin(a) / scale
    return cos * side / width, -sin * side / height, side + side / 2 * (1 - cos + sin)


def motion_kernel(k: float, angle: float) -> list[float]:
    """A normalised line of length k through the centre at `angle`, padded to PIL's 3x3 or 5x5.

    k points at most one pixel apart along the line (unit steps for a whole k), splatted bilinearly;
    a fractional k gives a streak shorter than the next whole one."""
    n = 3 if k <= 3 else 5
    kernel = np.zeros((n, n))
    centre = (n - 1) / 2
    a = math.radians(angle)
    for t in np.linspace(-(k - 1) / 2, (k - 1) / 2, max(1, math.ceil(k))):
        x, y = centre + t * math.cos(a), centre - t * math.sin(a)
        x0, y0 = math.floor(x), math.floor(y)
        fx, fy = x - x0, y - y0
        splat = ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)), (0, 1, (1 - fx) * fy), (1, 1, fx * fy))
        for dx, dy, weight in splat:
            if 0 <= x0 + dx < n and 0 <= y0 + dy < n:
                kernel[y0 + dy, x0 + dx] += weight
    return list((kernel / kernel.sum()).flatten())


def apply_canvas_effects(image: Image.Image, fx: CanvasEffects) -> Image.Image:
    if fx.color is not None:
        image = image.point(_color_lut(*fx.color))
    if fx.shadow is not None and fx.shadow[0] > 0:
        mask = _shadow_mask(image.size, fx.shadow)
        image = Image.composite(Image.new("RGB", image.size), image, mask)
    if fx.contrast is not None or fx.brightness is not None:
        image = image.point(_tone_lut(fx.contrast, fx.brightness))
    if fx.motion_blur is not None and fx.motion_blur[0] > 1:
        k, angle = fx.motion_blur
        n = 3 if k <= 3 else 5
        image = image.filter(ImageFilter.Kernel((n, n), motion_kernel(k, angle), scale=1))
    if fx.gaussian_blur is not None and fx.gaussian_blur >= 0.1:
        image = image.filter(ImageFilter.GaussianBlur(fx.gaussian_blur))
    return image
