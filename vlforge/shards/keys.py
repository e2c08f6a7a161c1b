"""Sample keys that webdataset reads back unchanged.

webdataset splits a member name at the first dot of its basename and groups members by
the part before it, so a key must hold no dot and no slash; `..` and absolute paths
would also escape the tar when someone extracts it.
"""

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
MAX_KEY_LEN = 120


def sanitize_key(key: str) -> str:
    """Map any string onto [A-Za-z0-9_-], never empty."""
    cleaned = _UNSAFE.sub("_", str(key)).strip("_")[:MAX_KEY_LEN]
    return cleaned or "sample"


class KeyAllocator:
    """Hands out sanitised keys that are unique within one shard."""

    def __init__(self) -> None:
        self._used: set[str] = set()

    def allocate(self, key: str) -> str:
        base = sanitize_key(key)
        candidate, n = base, 1
        while candidate in self._used:
            candidate = f"{base}_{n}"
            n += 1
        self._used.add(candidate)
        return candidate
