"""A source's records on disk: the planner streams each adapter's Items into the plan folder, units read theirs.

`src-NNN.jsonl` holds one Item a line and `src-NNN.idx` the byte offset of every line (little-endian
uint64), so a unit seeks straight to the records it needs. Both are written under temporary names and
renamed when complete. Neither side ever holds a source's records in memory: the planner keeps one Item,
the running digest and the set of tars named; a unit reads one line at a time.
"""

from __future__ import annotations

import hashlib
import json
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vlforge.shards.atomic import commit, temp_path
from vlforge.sources.annotations import Item, ShardMember

FLUSH_OFFSETS = 1 << 16  # offsets buffered before they are written (512 KiB)


@dataclass
class Spilled:
    """What the planner keeps of a source: how many records, their digest, the tars they read images from."""

    count: int
    digest: str
    tars: set[str] = field(default_factory=set)


def _paths(folder: Path, index: int) -> tuple[Path, Path]:
    return folder / f"src-{index:03d}.jsonl", folder / f"src-{index:03d}.idx"


def encode(item: Item) -> bytes:
    images = [{"tar": r.tar, "member": r.member} if isinstance(r, ShardMember) else r for r in item.images]
    data = {"uid": item.uid, "record": item.record, "images": images, "frame": item.frame, "reject": item.reject}
    return json.dumps(data, sort_keys=True, ensure_ascii=False, default=str).encode() + b"\n"


def decode(line: bytes) -> Item:
    data = json.loads(line)
    images = [ShardMember(**r) if isinstance(r, dict) else r for r in data["images"]]
    frame = tuple(data["frame"]) if data["frame"] is not None else None
    return Item(data["uid"], data["record"], images, frame, data["reject"])


def spill(items: Iterable[Item], folder: Path, index: int) -> Spilled:
    """Write every Item of one source to the plan folder; returns its count, digest and tars."""
    data_path, index_path = _paths(folder, index)
    data_tmp, index_tmp = temp_path(data_path), temp_path(index_path)
    digest, tars, count, offset = hashlib.sha256(), set(), 0, 0
    offsets = array("Q")
    with open(data_tmp, "wb") as data, open(index_tmp, "wb") as idx:
        for item in items:
            line = encode(item)
            data.write(line)
            digest.update(line)
            tars.update(r.tar for r in item.images if isinstance(r, ShardMember))
            offsets.append(offset)
            offset += len(line)
            count += 1
            if len(offsets) >= FLUSH_OFFSETS:
                _write_offsets(idx, offsets)
        _write_offsets(idx, offsets)
    commit(data_tmp, data_path)
    commit(index_tmp, index_path)
    return Spilled(count, digest.hexdigest(), tars)


def _write_offsets(f, offsets: array) -> None:
    np.asarray(offsets, dtype="<u8").tofile(f)
    del offsets[:]


class SpillReader:
    """Items of one spilled source by index; the offsets are memory-mapped, the lines read as needed."""

    def __init__(self, folder: Path, index: int) -> None:
        data_path, index_path = _paths(folder, index)
        size = index_path.stat().st_size
        self._offsets = np.memmap(index_path, dtype="<u8", mode="r") if size else np.empty(0, dtype="<u8")
        self._data = open(data_path, "rb")  # noqa: SIM115 - closed by close()

    def __len__(self) -> int:
        return len(self._offsets)

    def item(self, j: int) -> Item:
        self._data.seek(int(self._offsets[j]))
        return decode(self._data.readline())

    def close(self) -> None:
        self._data.close()


class Sources:
    """The plan folder's spilled sources, opened when a unit first reads from them."""

    def __init__(self, folder: Path) -> None:
        self.folder, self._open = folder, {}

    def item(self, source: int, index: int) -> Item:
        if source not in self._open:
            self._open[source] = SpillReader(self.folder, source)
        return self._open[source].item(index)

    def close(self) -> None:
        for reader in self._open.values():
            reader.close()
