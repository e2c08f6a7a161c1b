"""The 64-bit hash exact dedup compares (uid, url, image sha256), shared by the clean plan and its sha256 pass.

A false duplicate needs a 64-bit xxh3 collision: probability ~ n^2 / 2^65 (1e-6 at n = 6M).
"""

from __future__ import annotations

import xxhash


def hash_values(values: list[object]) -> list[int | None]:
    """64-bit xxh3 hash of each value's bytes (str as UTF-8, others via str()); None and empty give None."""
    digest = xxhash.xxh3_64_intdigest
    return [None if value is None or value == "" or value == b""
            else digest(value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogatepass"))
            for value in values]
