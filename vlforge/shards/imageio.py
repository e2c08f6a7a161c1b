"""The one way vlforge opens image bytes: an allow-list of formats and a pixel cap read from the header.

PIL can open dozens of formats, some through parsers of exotic containers; untrusted bytes (web
downloads, shards, JSONL image paths) only ever reach the common web formats below. The pixel count
is checked from the header, before any pixel is decoded, so a decompression bomb costs nothing.

Orientation (EXIF tag 0x0112), decided once:
- `vlforge clean` turns web images upright (`upright_rgb`): a caption-only alt text describes what a viewer shows.
- `vlforge render` and `vlforge mix` keep the STORED orientation (`normalize`): their records carry pixel
  coordinates (boxes, points, polygons) and the sizes the templates measure them against, and public
  annotations (COCO, RefCOCO, VG, GRIT) are in stored pixels (pycocotools and PIL without `exif_transpose`);
  turning the image would misalign every box. Caption-only records follow the same rule, so an image that a
  caption and a grounding record share is the same picture in both. An image with an orientation tag is
  re-encoded without it, so readers that honour EXIF and readers that do not (the trainer's `to_rgb`) agree.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # JPEG covers MPO (phone JPEGs)
MAX_PIXELS = 89_478_485  # PIL's own decompression-bomb bound
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # one image file or tar member that render and mix read whole
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
_ORIENTATION_TAG = 0x0112


class ImageRejected(ValueError):
    """Bytes refused before decoding, or (from `decode`) whose pixels do not decode; `reason` is a short drop
    reason (`image_unidentified`, `image_pixels>N`, `image_undecodable`).

    `size` is the (width, height) the header claimed, when it was read.
    """

    def __init__(self, reason: str, detail: str, size: tuple[int, int] | None = None) -> None:
        super().__init__(detail)
        self.reason, self.size = reason, size


def open_image(data_or_file: bytes | str | Path | BinaryIO, *, max_pixels: int = MAX_PIXELS,
               formats: tuple[str, ...] = ALLOWED_FORMATS) -> Image.Image:
    """A lazily decoded image (use it as a context manager); ImageRejected for other formats or too many pixels.

    Truncated or corrupt pixel data still surfaces later, as OSError from `load()`.
    """
    source = io.BytesIO(data_or_file) if isinstance(data_or_file, (bytes, bytearray, memoryview)) else data_or_file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own cap below decides
        try:
            im = Image.open(source, formats=formats)
        except Image.DecompressionBombError as exc:
            raise ImageRejected(f"image_pixels>{max_pixels}", str(exc)) from exc
        except UnidentifiedImageError as exc:
            raise ImageRejected("image_unidentified", f"not one of {', '.join(formats)}") from exc
    width, height = im.size
    if width * height > max_pixels:
        im.close()
        raise ImageRejected(f"image_pixels>{max_pixels}", f"{width}x{height} exceeds {max_pixels} pixels",
                            (width, height))
    return im


# What PIL's decoders raise for corrupt headers or truncated pixel data (each format's plugin its own types)
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, ZeroDivisionError, KeyError)


def decode(data: bytes) -> Image.Image:
    """`open_image` with every pixel decoded (use it as a context manager); ImageRejected for anything unusable:
    `image_undecodable` for a corrupt header or truncated pixel data (PIL's decoders raise any of these types)."""
    im = None
    try:
        im = open_image(data)
        im.load()
    except ImageRejected:
        raise
    except DECODE_ERRORS as exc:
        if im is not None:
            im.close()
        raise ImageRejected("image_undecodable", f"cannot decode ({type(exc).__name__}: {exc})") from exc
    return im


@dataclass(frozen=True)
class Normalized:
    """What a shard stores for one image: JPEG bytes and the (width, height) of the source, in stored orientation."""

    data: bytes
    size: tuple[int, int]
    reencoded: bool


def normalize(im: Image.Image, data: bytes, *, max_side: int | None = None, quality: int = 95) -> Normalized:
    """The JPEG a shard stores for the decoded image `im` of `data`, in STORED orientation (module docstring).

    `data` passes through untouched when it is an RGB or grey JPEG without an orientation tag and within
    `max_side`; anything else is made RGB, scaled so its longer side fits, and re-encoded without EXIF.
    """
    size = im.size
    fits = max_side is None or max(size) <= max_side
    if im.format == "JPEG" and im.mode in ("RGB", "L") and fits and exif_orientation(im) == 1:
        return Normalized(data, size, False)
    rgb = to_rgb(im)
    if not fits:
        scale = max_side / max(size)
        rgb = rgb.resize((max(1, round(size[0] * scale)), max(1, round(size[1] * scale))), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=quality)
    return Normalized(buffer.getvalue(), size, True)


def to_rgb(im: Image.Image) -> Image.Image:
    """RGB copy of a decoded image: alpha composited on white, 16-bit scaled (not clipped) to 8-bit."""
    if im.mode in _SIXTEEN_BIT_MODES:
        values = np.asarray(im, dtype=np.float64) / 257.0
        im = Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), "L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return im.convert("RGB")


def exif_orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8; 1 when absent or unreadable (a broken EXIF block is not a broken image)."""
    try:
        value = im.getexif().get(_ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_rgb(im: Image.Image, orientation: int | None = None) -> Image.Image:
    """The decoded image turned as its EXIF orientation says, then `to_rgb`: what a viewer shows."""
    orientation = exif_orientation(im) if orientation is None else orientation
    return to_rgb(ImageOps.exif_transpose(im) if orientation != 1 else im)


def perceptual_hash(im: Image.Image) -> str:
    """64-bit DCT pHash (imagehash) of the image's RGB pixels, 16 hex digits: survives re-encoding and resizing."""
    import imagehash  # lazy: pulls in scipy

    return str(imagehash.phash(to_rgb(im)))
