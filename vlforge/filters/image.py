"""Image validation after download: decode safely, measure the real size, normalise to upright RGB.

Hostile bytes are the norm on the web: HTML error pages served as images, truncated transfers,
decompression bombs. The pixel count is read from the header and capped before any pixel is decoded.
Images that are already upright RGB JPEG/PNG/WebP keep their original bytes and are only validated:
JPEGs decode at 1/8 scale (PIL `draft`), which still reads every entropy-coded byte, so truncation is
caught at a fraction of the cost. Everything else (CMYK, palette, alpha, 16-bit, grey, EXIF-rotated,
other formats) is decoded in full, rotated upright, composited on white, and re-encoded as JPEG.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from typing import Annotated

import pyarrow as pa
from PIL import Image
from pydantic import Field

from vlforge.filters.base import RowFilter, checked_params, image_values, set_column
from vlforge.shards.imageio import (
    ALLOWED_FORMATS,
    DECODE_ERRORS,
    ImageRejected,
    exif_orientation,
    open_image,
    upright_rgb,
)

_KEEP_AS_IS = {"JPEG": "jpg", "MPO": "jpg", "PNG": "png", "WEBP": "webp"}
# (output bytes, file extension, width, height, drop reason) of one image
Checked = tuple[bytes | None, str | None, int | None, int | None, str | None]
DEFAULT_MAX_PIXELS = 50_000_000  # `image` and `image_header` alike, so the cheap op never drops what `image` keeps


def _looks_like_html(data: bytes) -> bool:
    """An HTML or XML page (error pages, S3 'AccessDenied' XML) served where an image was expected."""
    head = data[:256].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return head.startswith((b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--"))


class ImageBytesFilter(RowFilter):
    """Shared by the ops that open the downloaded bytes (`image`, `image_header`): one opener with the same limits,
    and the same reason for bytes that are no image at all, so an op that only reads headers drops exactly the
    rows `image` would drop for the same cause, with the same reason."""

    needs_image = True

    def __init__(self, max_pixels: int, formats: tuple[str, ...], image_col: str, name: str) -> None:
        Image.init()
        unknown = sorted(set(formats) - set(Image.OPEN))
        if unknown:
            raise ValueError(f"formats: PIL cannot open {unknown}; known: {sorted(Image.OPEN)}")
        self.max_pixels, self.formats = max_pixels, tuple(formats)
        self.image_col = image_col
        self.name = name

    def screen(self, data: bytes | None, read: Callable[[Image.Image, bytes], Checked]) -> Checked:
        """`read(header-only opened image, data)`, or the reason the bytes are missing, empty, HTML, refused by
        the opener (format, pixel cap), of no size, or fail to parse (in `read` too: truncated or corrupt)."""
        if data is None:
            return None, None, None, None, "image_missing"
        if not data:
            return data, None, None, None, "image_empty"
        if _looks_like_html(data):
            return data, None, None, None, "image_html"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-image PIL warnings (EXIF, bomb size) are reasons or noise
            try:
                with open_image(data, max_pixels=self.max_pixels, formats=self.formats) as im:
                    if im.width <= 0 or im.height <= 0:
                        return data, None, None, None, "image_corrupt"
                    return read(im, data)
            except ImageRejected as rejected:
                width, height = rejected.size or (None, None)
                return data, None, width, height, rejected.reason
            except DECODE_ERRORS as error:  # clean tells truncated transfers from other damage, unlike decode()
                truncated = isinstance(error, OSError) and "truncated" in str(error).lower()
                return data, None, None, None, "image_truncated" if truncated else "image_corrupt"

    def inputs(self, batch: pa.Table) -> list[bytes | None]:
        return image_values(batch, self.image_col)


class ImageFilter(ImageBytesFilter):
    """Validate downloaded image bytes; drop what does not decode, with the cause as reason.

    Replaces `image` with the (possibly re-encoded) bytes and `width`/`height` with the real upright
    size (the sizes the dump claimed move to `meta_width`/`meta_height`); adds `image_ext` (file
    extension for the shard) and `image_reencoded`. Hashing is the clean unit's: it hashes the bytes as
    they arrive, and once more only those this filter re-encoded.
    Reasons: image_missing, image_empty, image_html, image_unidentified, image_pixels>N, image_truncated,
    image_corrupt.
    """

    op = "image"
    validates_image = True

    @checked_params
    def __init__(self, max_pixels: Annotated[int, Field(gt=0)] = DEFAULT_MAX_PIXELS,
                 quality: Annotated[int, Field(ge=1, le=100)] = 95, *, formats: tuple[str, ...] = ALLOWED_FORMATS,
                 image_col: str = "image", name: str = "image") -> None:
        super().__init__(max_pixels, formats, image_col, name)
        self.quality = quality

    def check(self, data: bytes | None) -> Checked:
        """(output bytes, extension, width, height, reason) for one image."""
        return self.screen(data, self._validate)

    def _validate(self, im: Image.Image, data: bytes) -> Checked:
        """Decode; a PNG is verified first (chunk CRCs: PNG's own corruption check, which load() skips)."""
        if im.format != "PNG":
            return self._decode(im, data)
        im.verify()
        with open_image(data, max_pixels=self.max_pixels, formats=("PNG",)) as png:
            return self._decode(png, data)

    def _decode(self, im: Image.Image, data: bytes) -> Checked:
        width, height = im.size
        orientation = exif_orientation(im)
        ext = _KEEP_AS_IS.get(im.format or "")
        if ext is not None and im.mode == "RGB" and orientation == 1:
            if im.format in ("JPEG", "MPO"):
                im.draft(None, (1, 1))  # decode at 1/8 scale: validates every byte, skips most of the IDCT
            im.load()
            return data, ext, width, height, None
        im.load()
        upright = upright_rgb(im, orientation)
        out = io.BytesIO()
        upright.save(out, "JPEG", quality=self.quality)
        return out.getvalue(), "jpg", upright.width, upright.height, None

    def judge(self, data: bytes | None) -> tuple[bytes | None, str | None, int | None, int | None, bool, str | None]:
        """`check`'s result with whether the bytes were re-encoded, before the reason."""
        image, ext, width, height, reason = self.check(data)
        return image, ext, width, height, image is not None and image is not data, reason

    def outputs(self) -> list[tuple[str, pa.DataType]]:
        return [(self.image_col, pa.binary()), ("image_ext", pa.string()), ("width", pa.int64()),
                ("height", pa.int64()), ("image_reencoded", pa.bool_())]

    def prepare(self, batch: pa.Table, values: list) -> pa.Table:
        """The sizes the dump claimed, kept as `meta_width`/`meta_height` before the real ones replace them."""
        for name in ("width", "height"):
            if name in batch.column_names:
                batch = set_column(batch, f"meta_{name}", batch[name])
        return batch
