"""Exact duplicates over a whole run in bounded memory: the first occurrence in input order is kept.

Rows are ordered across files by an order key (`file_index << 40 | row`). Each input file gets a key file
of (64-bit hash, order key) pairs sorted by hash, so one hash partition is a contiguous slice of every
key file (read through a memory map) and no more than a partition's hashes are ever in memory.
A false duplicate needs a 64-bit xxh3 collision (`hash_values`): probability ~ n^2 / 2^65 (1e-6 at n = 6M).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import xxhash

from vlforge.shards.atomic import commit, temp_path

ROW_BITS = 40  # order key = file_index << 40 | row: 2^40 rows per file, 2^23 files
KEY_DTYPE = np.dtype([("hash", "<u8"), ("order", "<i8")])
PartitionJob = tuple[list[Path], int, int, Path]  # find_duplicates' arguments


def hash_values(values: list[object]) -> list[int | None]:
    """64-bit xxh3 hash of each value's bytes (str as UTF-8, others via str()); None and empty give None."""
    digest = xxhash.xxh3_64_intdigest
    return [None if value is None or value == "" or value == b""
            else digest(value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass"))
            for value in values]


def order_keys(file_index: int, rows: np.ndarray) -> np.ndarray:
    return (np.int64(file_index) << ROW_BITS) | rows.astype(np.int64)


def partition_bits(total: int, partition_rows: int) -> int:
    """How many leading hash bits split `total` hashes into partitions of at most ~`partition_rows`."""
    return 0 if total <= partition_rows else math.ceil(math.log2(total / partition_rows))


def key_path(root: Path, kind: str, file_index: int) -> Path:
    return root / "keys" / f"{kind}-{file_index:05d}.npy"


def dup_files(root: Path, kind: str, bits: int) -> list[Path]:
    return [root / "dups" / f"{kind}-{p:05d}.npy" for p in range(1 << bits)]


def _save(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "wb") as f:
        np.save(f, array)
    commit(tmp, path)


def write_keys(path: Path, hashes: Iterable[int | None], orders: np.ndarray) -> None:
    """Save (hash, order) pairs sorted by hash (stable: equal hashes stay in input order); None hashes skipped."""
    values = list(hashes)
    present = np.fromiter((h is not None for h in values), dtype=bool, count=len(values))
    keys = np.empty(int(present.sum()), dtype=KEY_DTYPE)
    keys["hash"] = np.fromiter((h for h in values if h is not None), dtype=np.uint64, count=len(keys))
    keys["order"] = orders[present]
    _save(path, keys[np.argsort(keys["hash"], kind="stable")])


def _partition_bounds(partition: int, bits: int) -> tuple[int, int | None]:
    if bits == 0:
        return 0, None
    shift = 64 - bits
    high = None if partition == (1 << bits) - 1 else (partition + 1) << shift
    return partition << shift, high


def find_duplicates(key_files: list[Path], partition: int, bits: int, out: Path) -> int:
    """Orders of the later copies of every hash in one partition, saved sorted; returns how many.

    `key_files` must be in input order; within each, equal hashes are in row order (see write_keys).
    """
    low, high = _partition_bounds(partition, bits)
    parts = []
    for path in key_files:
        if not path.exists():
            continue
        keys = np.load(path, mmap_mode="r")
        lo = int(np.searchsorted(keys["hash"], np.uint64(low)))
        hi = len(keys) if high is None else int(np.searchsorted(keys["hash"], np.uint64(high)))
        parts.append(np.array(keys[lo:hi]))
    keys = np.concatenate(parts) if parts else np.empty(0, dtype=KEY_DTYPE)
    keys = keys[np.argsort(keys["hash"], kind="stable")]
    later = np.zeros(len(keys), dtype=bool)
    later[1:] = keys["hash"][1:] == keys["hash"][:-1]
    duplicates = np.sort(keys["order"][later])
    _save(out, duplicates)
    return len(duplicates)


def partition_jobs(root: Path, kind: str, file_indices: Iterable[int], bits: int) -> list[PartitionJob]:
    """find_duplicates' arguments for every partition of one kind of key, key files in input order."""
    key_files = [key_path(root, kind, i) for i in sorted(file_indices)]
    return [(key_files, p, bits, out) for p, out in enumerate(dup_files(root, kind, bits))]


def later_rows(root: Path, kind: str, bits: int, file_index: int, row_start: int, row_stop: int) -> set[int]:
    """Rows in [row_start, row_stop) of one file that repeat an earlier row (as found by find_duplicates)."""
    low, high = order_keys(file_index, np.array([row_start, row_stop])).tolist()
    rows: set[int] = set()
    for path in dup_files(root, kind, bits):
        dups = np.load(path, mmap_mode="r")
        rows.update(order - low + row_start for order in dups[np.searchsorted(dups, low):np.searchsorted(dups, high)]
                    .tolist())
    return rows
