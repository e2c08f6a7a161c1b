"""Near-duplicate images by perceptual hash: the same picture resized, re-encoded or slightly edited.

Exact dedup compares URL, uid and the bytes' sha256, so a thumbnail and its original, or one photo saved at
two JPEG qualities, both survive it. This step hashes each image with the 64-bit DCT pHash (imagehash) and
drops a row whose hash lies within `max_distance` bits of an earlier row's, first in input order kept.
Earlier rows are the ones this instance has seen: a clean work unit's chain, across its chunks.
Adds `phash` (16 hex digits), kept in the manifest, so near-duplicates across units can be found later.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field

from vlforge.filters.base import RowFilter, checked_params, image_values
from vlforge.shards.imageio import ImageRejected, open_image, perceptual_hash


def _bits_set(values: np.ndarray) -> np.ndarray:
    """Set bits of each uint64 (numpy < 2 has no bitwise_count)."""
    return np.unpackbits(values.view(np.uint8)).reshape(len(values), 64).sum(axis=1)


class NearDuplicateFilter(RowFilter):
    """Drop images within `max_distance` bits (Hamming, of 64) of an image seen earlier ('near_duplicate')."""

    op = "near_duplicate"
    needs_image = True
    stateful = True  # `seen`: earlier rows of this unit

    @checked_params
    def __init__(self, max_distance: Annotated[int, Field(ge=0, le=32)] = 4, *, image_col: str = "image",
                 name: str = "near_duplicate") -> None:
        self.max_distance, self.image_col, self.name = max_distance, image_col, name
        self._seen = np.zeros(1024, dtype=np.uint64)  # kept hashes, the first `_count` of a buffer that doubles
        self._count = 0

    def inputs(self, batch: pa.Table) -> list[bytes | None]:
        return image_values(batch, self.image_col)

    def outputs(self) -> list[tuple[str, pa.DataType]]:
        return [("phash", pa.string())]

    def judge(self, data: bytes | None) -> tuple[str | None, str | None]:
        if data is None:
            return None, "image_missing"
        try:
            with open_image(data) as im:
                digest = perceptual_hash(im)
        except (ImageRejected, OSError, ValueError, TypeError):
            return None, "image_unreadable"
        value = np.uint64(int(digest, 16))
        seen = self._seen[:self._count]
        if len(seen) and int(_bits_set(seen ^ value).min()) <= self.max_distance:
            return digest, "near_duplicate"
        if self._count == len(self._seen):
            self._seen = np.concatenate([self._seen, np.zeros_like(self._seen)])
        self._seen[self._count] = value
        self._count += 1
        return digest, None
