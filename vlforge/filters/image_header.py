"""Image format and size from the header alone, so a recipe can drop by size before paying for a decode.

`image` decodes every image (JPEG at 1/8 scale, still every entropy-coded byte) before `aspect_ratio` and
`image_size` judge its real size; on web dumps a large share of decoded images is then dropped for its size.
This op opens the bytes exactly as `image` does (same opener, format allow-list and pixel cap, see
`ImageBytesFilter`) but reads only the header (PIL's `Image.open`: a JPEG's markers up to the scan), so the size
steps can run on `header_width`/`header_height` first and `image` decodes only what they keep.
"""

from __future__ import annotations

from typing import Annotated

import pyarrow as pa
from PIL import Image
from pydantic import Field

from vlforge.filters.base import checked_params
from vlforge.filters.image import DEFAULT_MAX_PIXELS, Checked, ImageBytesFilter
from vlforge.shards.imageio import ALLOWED_FORMATS


class ImageHeaderFilter(ImageBytesFilter):
    """Adds `header_width`/`header_height` (int64, null where the header does not give them); leaves `image`,
    `width` and `height` alone.

    The sizes are the STORED ones: an EXIF-rotated photo (orientation 5-8) has them swapped against the upright
    sizes `image` measures. Aspect ratio and shorter side do not depend on the order, so size steps on the header
    columns drop the same rows as on the real ones.
    Drops only what `image` would drop for the same cause, with its reason: image_missing, image_empty,
    image_html, image_unidentified, image_pixels>N (keep `max_pixels` and `formats` equal to the `image` step's),
    and image_truncated/image_corrupt for a header that does not parse. Damage past the header (a cut-off JPEG
    scan, a bad PNG CRC) is kept here and dropped by `image`. It validates nothing: a recipe still needs `image`.
    """

    op = "image_header"

    @checked_params
    def __init__(self, max_pixels: Annotated[int, Field(gt=0)] = DEFAULT_MAX_PIXELS, *,
                 formats: tuple[str, ...] = ALLOWED_FORMATS, image_col: str = "image",
                 name: str = "image_header") -> None:
        super().__init__(max_pixels, formats, image_col, name)

    def judge(self, data: bytes | None) -> tuple[int | None, int | None, str | None]:
        """(header width, header height, reason) of one image."""
        return self.screen(data, _stored_size)[2:]

    def outputs(self) -> list[tuple[str, pa.DataType]]:
        return [("header_width", pa.int64()), ("header_height", pa.int64())]


def _stored_size(im: Image.Image, data: bytes) -> Checked:
    """What the opener read from the header, nothing decoded."""
    return data, None, im.width, im.height, None
