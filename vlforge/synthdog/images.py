"""Background photographs, generated textures, paper textures and noise, each decoded or made once per worker.

SynthDoG opens and decodes its paper texture and background from disk for every sample. Here decoded
images live in a byte-bounded LRU cache (JPEGs decode straight at the reduced size with PIL's draft
mode), and textures and noise fields are generated once from fixed seeds, so they are identical on
every worker.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from vlforge.shards.imageio import open_image, upright_rgb
from vlforge.shards.members import is_image

log = logging.getLogger(__name__)

BUILTIN_PHOTOS = "builtin:skimage"
# Photographs and natural textures shipped in skimage/data (those showing text are left out: text in a
# background would be ink without a label).
_SKIMAGE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                   "grass.png", "gravel.png", "hubble_deep_field.jpg", "moon.png", "motorcycle_left.png",
                   "rocket.jpg")
TEXTURE_COUNT = 64
TEXTURE_SIDE = 256
PAPER_COUNT = 16
PAPER_SIDE = 512
NOISE_SIDE = 1024


class BadImage(ValueError):
    """A background or paper file that cannot be decoded."""


def image_files(sources: Iterable[str]) -> list[str]:
    """Image files under the given directories/files (and builtin sets), sorted for a stable order."""
    found: set[str] = set()
    for source in sources:
        if source == BUILTIN_PHOTOS:
            from skimage import data

            root = Path(data.__file__).parent
            found.update(str(root / name) for name in _SKIMAGE_PHOTOS if (root / name).is_file())
            continue
        path = Path(source)
        if path.is_dir():
            found.update(str(p) for p in path.rglob("*")
                         if p.is_file() and is_image(p.suffix.lstrip(".")))
        elif path.is_file():
            found.add(str(path))
        else:
            raise FileNotFoundError(f"backgrounds: no such file or directory: {source}")
    return sorted(found)


def fingerprint(paths: list[str]) -> str:
    """Identifies a file list, so workers can check they list the same backgrounds as the driver."""
    digest = hashlib.sha1()
    for p in paths:
        digest.update(p.encode("utf-8", "surrogateescape") + b"\0")
    return f"{len(paths)}:{digest.hexdigest()[:16]}"


def decode(path: str, max_side: int) -> Image.Image:
    """Upright RGB (a background has no coordinates to keep), at most max_side on its long side; opened by
    `shards.imageio.open_image` (its formats, its pixel cap); BadImage when it does not decode."""
    try:
        with open_image(path) as im:
            im.draft("RGB", (max_side, max_side))
            im = upright_rgb(im)
    except Exception as exc:  # noqa: BLE001 - truncated, bomb, not an image: all mean unusable
        raise BadImage(f"{path}: {type(exc).__name__}: {exc}") from None
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return im


class ImageCache:
    """Decoded images, least recently used dropped first once `budget_bytes` is exceeded."""

    def __init__(self, max_side: int, budget_bytes: int) -> None:
        self.max_side = max_side
        self.budget = budget_bytes
        self._items: OrderedDict[str, Image.Image] = OrderedDict()
        self._bytes = 0
        self.bad: set[str] = set()

    def get(self, path: str) -> Image.Image:
        hit = self._items.get(path)
        if hit is not None:
            self._items.move_to_end(path)
            return hit
        if path in self.bad:
            raise BadImage(f"{path}: unreadable (seen before)")
        try:
            im = decode(path, self.max_side)
        except BadImage as exc:
            self.bad.add(path)
            log.warning("backgrounds: skipping unreadable image %s", exc)
            raise
        self._items[path] = im
        self._bytes += im.width * im.height * 3
        while self._bytes > self.budget and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._bytes -= old.width * old.height * 3
        return im


def _smooth_field(rng: np.random.Generator, side: int, grid: int, channels: int) -> np.ndarray:
    """Random values on a grid x grid lattice, bicubically enlarged: a smooth field in [0, 1]."""
    coarse = rng.random((grid, grid, channels)).astype(np.float32)
    layers = [Image.fromarray(coarse[..., c], mode="F").resize((side, side), Image.Resampling.BICUBIC)
              for c in range(channels)]
    return np.clip(np.stack([np.asarray(layer) for layer in layers], axis=-1), 0, 1)


@lru_cache(maxsize=TEXTURE_COUNT)
def background_texture(index: int) -> Image.Image:
    """A generated backdrop (muted blotches over a gradient with fine grain), fixed per index."""
    rng = np.random.default_rng([0x5D06, index])
    base = _smooth_field(rng, TEXTURE_SIDE, int(rng.integers(2, 5)), 3)
    detail = _smooth_field(rng, TEXTURE_SIDE, int(rng.integers(6, 24)), 3)
    grain = rng.normal(0, 0.03, (TEXTURE_SIDE, TEXTURE_SIDE, 1)).astype(np.float32)
    mix = float(rng.uniform(0.1, 0.4))
    rgb = (1 - mix) * base + mix * detail
    gray = rgb.mean(axis=-1, keepdims=True)
    saturation = float(rng.uniform(0.15, 0.6))
    rgb = np.clip(gray + saturation * (rgb - gray) + grain, 0, 1)
    return Image.fromarray((rgb * 255).astype(np.uint8), mode="RGB")


@lru_cache(maxsize=PAPER_COUNT)
def paper_texture(index: int) -> Image.Image:
    """A generated grey paper grain (fractal noise with a few fibres), fixed per index."""
    rng = np.random.default_rng([0x9A9E, index])
    field = np.zeros((PAPER_SIDE, PAPER_SIDE), dtype=np.float32)
    for octave, grid in enumerate((4, 8, 16, 32, 64, 128, 256)):
        field += _smooth_field(rng, PAPER_SIDE, grid, 1)[..., 0] / (1.6 ** octave)
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    image = Image.fromarray((96 + 159 * field).astype(np.uint8), mode="L")
    return image


def paper_tone(value: float, alpha: float, tint: int) -> float:
    """One channel of the paper: texture value at opacity alpha over white, times the tint channel."""
    return (255 - alpha * (255 - value)) * tint / 255


@lru_cache(maxsize=1)
def noise_bank() -> np.ndarray:
    """Standard normal values from a fixed seed; samples take random windows instead of drawing anew."""
    return np.random.default_rng(0x4015E).standard_normal((NOISE_SIDE, NOISE_SIDE), dtype=np.float32)


def noise_window(height: int, width: int, top: int, left: int) -> np.ndarray:
    """A (height, width) window of the bank starting at (top, left), wrapping around its edges."""
    bank = noise_bank()
    rows = np.arange(top, top + height) % NOISE_SIDE
    cols = np.arange(left, left + width) % NOISE_SIDE
    if rows[-1] >= rows[0] and cols[-1] >= cols[0] and height <= NOISE_SIDE and width <= NOISE_SIDE:
        return bank[rows[0]:rows[0] + height, cols[0]:cols[0] + width]
    return bank[np.ix_(rows, cols)]
