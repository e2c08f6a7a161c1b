"""Tar members are read by name through the bounded `shards.reader.member_bytes` (`sources.images`)."""

import io
import tarfile

import pytest

from vlforge.sources import images
from vlforge.sources.annotations import ShardMember
from vlforge.sources.images import ImageDrop, TarReader


def test_members_by_name_and_the_size_limit(tmp_path, monkeypatch):
    path = str(tmp_path / "s.tar")
    with tarfile.open(path, "w") as tar:
        for name, data in (("a.jpg", b"A" * 10), ("b.jpg", b"B" * 11), ("big.jpg", b"C" * 12)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 11)
    tars = TarReader()
    try:
        assert tars.read(ShardMember(path, "b.jpg")) == b"B" * 11
        assert tars.read(ShardMember(path, "a.jpg")) == b"A" * 10  # the same open tar, read again
        with pytest.raises(ImageDrop, match=r"s\.tar: member big\.jpg is not a file of at most 11 bytes") as big:
            tars.read(ShardMember(path, "big.jpg"))
        with pytest.raises(ImageDrop, match=r"s\.tar: no member c\.jpg") as missing:
            tars.read(ShardMember(path, "c.jpg"))
    finally:
        tars.close()
    assert (big.value.reason, missing.value.reason) == ("image_too_large", "image_missing")
