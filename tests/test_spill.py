"""A unit's spill: many images in one file, read back exactly by location, nothing left behind."""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vlforge.sources.spill import Spill


def test_bytes_come_back_exactly_from_concurrent_writers_and_the_file_is_gone_after(tmp_path: Path) -> None:
    blobs = [bytes([i % 251]) * (1000 + 37 * i) for i in range(200)]
    with Spill(tmp_path) as spill:
        with ThreadPoolExecutor(8) as pool:
            where = list(pool.map(spill.put, blobs))
        assert spill.on_disk == sum(len(b) for b in blobs)
        assert sorted(offset for offset, _ in where) == sorted(set(offset for offset, _ in where))
        assert [spill.read(offset, size) for offset, size in where] == blobs
        assert spill.read(*where[7]) == blobs[7]
    assert list(tmp_path.iterdir()) == []  # an unnamed temporary file: nothing to clean up, even after a kill


def test_reading_past_the_end_is_an_error(tmp_path: Path) -> None:
    with Spill(tmp_path) as spill:
        offset, size = spill.put(b"abc")
        with pytest.raises(OSError, match="3 bytes at 1 expected, 2 read"):
            spill.read(1, size)
        assert spill.read(offset, size) == b"abc"
