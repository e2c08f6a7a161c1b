"""Reading the image files and tar members that records name, bounded: nothing over `MAX_IMAGE_BYTES` is read.

Used by the mix (annotation records name files or members of WebDataset tars) and by render (JSONL records
name files); what can go wrong is an `ImageDrop` whose `reason` is the manifest's drop reason.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

from vlforge.shards.imageio import MAX_IMAGE_BYTES
from vlforge.shards.reader import member_bytes
from vlforge.sources.annotations import ImageRef, ShardMember


class ImageDrop(ValueError):
    """An image the sample cannot use; `reason` is its manifest drop reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason

    def __reduce__(self):
        return ImageDrop, (self.reason, str(self))


def read_image_file(path: str | Path) -> bytes:
    """The bytes of an image file; ImageDrop `image_missing` or `image_too_large` (never read)."""
    path = Path(path)
    if not path.is_file():
        raise ImageDrop("image_missing", f"no such image file: {path}")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise ImageDrop("image_too_large", f"{path}: larger than {MAX_IMAGE_BYTES} bytes")
    return path.read_bytes()


class TarReader:
    """Tars opened once per work unit; members read by name."""

    def __init__(self) -> None:
        self._open: dict[str, tarfile.TarFile] = {}

    def read(self, ref: ShardMember) -> bytes:
        if ref.tar not in self._open:
            self._open[ref.tar] = tarfile.open(ref.tar, mode="r:")  # noqa: SIM115 - closed by close()
        tar = self._open[ref.tar]
        try:
            info = tar.getmember(ref.member)
        except KeyError:
            raise ImageDrop("image_missing", f"{ref.tar}: no member {ref.member}") from None
        data = member_bytes(tar, info, MAX_IMAGE_BYTES)
        if data is None:
            raise ImageDrop("image_too_large" if info.isfile() else "image_missing",
                            f"{ref.tar}: member {ref.member} is not a file of at most {MAX_IMAGE_BYTES} bytes")
        return data

    def close(self) -> None:
        for tar in self._open.values():
            tar.close()
        self._open.clear()


def read_bytes(ref: ImageRef, tars: TarReader) -> bytes:
    """The bytes an image reference names: a tar member (through `tars`) or a file."""
    return tars.read(ref) if isinstance(ref, ShardMember) else read_image_file(ref)
