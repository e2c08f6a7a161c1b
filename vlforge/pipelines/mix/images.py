"""Images of a mix: read (`sources.images`: a file or a tar member), hashed (bytes and perceptual), copied or
re-encoded.

An image is copied byte for byte when it is an RGB or grey JPEG without an EXIF orientation tag within the
recipe's size cap; otherwise (larger, another format, CMYK, EXIF-rotated, ...) it is re-encoded by the shared
`shards.imageio.normalize`, in stored orientation (the frame its boxes are measured in). Hashes are of the
source image: sha256 of its bytes, and a 64-bit pHash (imagehash) of its pixels, which survives re-encoding
and resizing.
"""

from __future__ import annotations

import hashlib
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vlforge.shards.imageio import MAX_IMAGE_BYTES, ImageRejected, decode, normalize, perceptual_hash
from vlforge.shards.members import is_image, split_member
from vlforge.shards.reader import member_bytes
from vlforge.sources.images import ImageDrop


@dataclass
class Prepared:
    data: bytes  # what goes into the shard
    size: tuple[int, int]  # of the source image: the frame its pixel boxes are measured in
    sha256: str
    phash: str | None
    reencoded: bool


def hashes(data: bytes, phash: bool) -> tuple[str, str | None]:
    """(sha256 hex, pHash hex or None) of image bytes; ImageDrop when they do not decode."""
    with _decoded(data) as im:
        return hashlib.sha256(data).hexdigest(), perceptual_hash(im) if phash else None


def _decoded(data: bytes) -> Image.Image:
    try:
        return decode(data)
    except ImageRejected as exc:
        raise ImageDrop(exc.reason, str(exc)) from None


def prepare(data: bytes, max_side: int | None, quality: int, phash: bool) -> Prepared:
    """The image as the shard stores it (`normalize`: stored orientation), with the hashes of the source."""
    with _decoded(data) as im:
        perceptual = perceptual_hash(im) if phash else None
        image = normalize(im, data, max_side=max_side, quality=quality)
    return Prepared(image.data, image.size, hashlib.sha256(data).hexdigest(), perceptual, image.reencoded)


EVAL_FILES = {"sha256": "eval-sha256.npy", "phash": "eval-phash.npy"}


def eval_hashes(dirs: list[Path], phash: bool, folder: Path) -> str:
    """Sorted sha256 and pHash arrays of every image in the evaluation directories (image files and shard
    tars), saved in the plan `folder` for the units to memory-map; returns the digest of both.

    Planning holds the hashes of the evaluation images only (~200 bytes each), never the training data's.
    """
    for root in dirs:
        if not Path(root).is_dir():
            raise FileNotFoundError(f"exclude_eval: no such directory {root}")
    shas: set[str] = set()
    perceptual: set[str] = set()
    for blob in _eval_images(dirs):
        try:
            sha, ph = hashes(blob, phash)
        except ImageDrop:
            continue
        shas.add(sha)
        if ph:
            perceptual.add(ph)
    digest = hashlib.sha256()
    for kind, found in (("sha256", shas), ("phash", perceptual)):
        array = np.array(sorted(found), dtype="S64")
        np.save(folder / EVAL_FILES[kind], array)
        digest.update(array.tobytes() + b"|")
    return digest.hexdigest()


class EvalSet:
    """The evaluation hashes of a plan folder, memory-mapped; membership by binary search."""

    def __init__(self, folder: Path) -> None:
        self._arrays = {kind: np.load(Path(folder) / name, mmap_mode="r") for kind, name in EVAL_FILES.items()}

    def __contains__(self, image: Prepared) -> bool:
        return self._has("sha256", image.sha256) or (image.phash is not None and self._has("phash", image.phash))

    def _has(self, kind: str, value: str) -> bool:
        array, key = self._arrays[kind], value.encode()
        at = int(np.searchsorted(array, key))
        return at < len(array) and array[at] == key


def _eval_images(dirs: list[Path]) -> Iterator[bytes]:
    for root in dirs:
        for path in sorted(p for p in Path(root).rglob("*") if p.is_file()):
            ext = path.suffix.lower().lstrip(".")
            if is_image(ext) and path.stat().st_size <= MAX_IMAGE_BYTES:
                yield path.read_bytes()
            elif ext == "tar":
                with tarfile.open(path, mode="r:") as tar:
                    for info in tar:
                        if is_image(split_member(info.name)[1]):
                            data = member_bytes(tar, info, MAX_IMAGE_BYTES)
                            if data is not None:
                                yield data
