"""What each run wrote: `DIR/__vlforge/written-TOKEN.jsonl`, one line per file renamed into place.

A name alone does not make a file vlforge's: a user may put a file under a name a run would give.
Every fenced commit (`atomic.commit`) appends the final name with the size, mtime and inode of what
it is about to rename there, fsynced before the rename. A file counts as written by vlforge only
while a run of the directory recorded it and it still has that identity, so neither a user's file
of a vlforge-like name nor a user's replacement of a vlforge file is deleted or overwritten.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from vlforge.shards.fence import STATE_DIR, Fence

JOURNAL_PREFIX, JOURNAL_SUFFIX = "written-", ".jsonl"


def journal_path(out_dir: str | Path, token: str) -> Path:
    return Path(out_dir) / STATE_DIR / f"{JOURNAL_PREFIX}{token}{JOURNAL_SUFFIX}"


def journal_token(name: str) -> str | None:
    """The run token of a journal's file name; None for any other name."""
    if name.startswith(JOURNAL_PREFIX) and name.endswith(JOURNAL_SUFFIX):
        return name[len(JOURNAL_PREFIX): -len(JOURNAL_SUFFIX)]
    return None


def _identity(path: Path) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _relative(out_dir: str | Path, path: Path) -> str:
    return os.path.relpath(path, out_dir)


def record(fence: Fence, final: Path, written: Path) -> None:
    """Append `final` with the identity of `written` (the file about to be renamed to it), fsynced."""
    line = json.dumps({"path": _relative(fence.out_dir, final), "id": _identity(written)}) + "\n"
    fd = os.open(journal_path(fence.out_dir, fence.token), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())  # one O_APPEND write: concurrent workers never interleave a line
        os.fsync(fd)
    finally:
        os.close(fd)


def start(fence: Fence) -> None:
    """Create the run's journal and make its directory entry durable before any commit."""
    path = journal_path(fence.out_dir, fence.token)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class Written:
    """The files the runs of `tokens` recorded in `out_dir` (the last record of each name wins)."""

    def __init__(self, out_dir: str | Path, tokens: Iterable[str]) -> None:
        self.out_dir = Path(out_dir)
        self._ids: dict[str, list[int]] = {}
        for token in tokens:
            path = journal_path(out_dir, token)
            if not path.exists():
                continue
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    self._ids[entry["path"]] = list(entry["id"])
                except (ValueError, KeyError, TypeError):
                    continue  # a line torn by a crash records nothing

    def __contains__(self, path: Path) -> bool:
        """Whether a run recorded this file and it is still the file that run wrote."""
        recorded = self._ids.get(_relative(self.out_dir, path))
        return recorded is not None and path.exists() and _identity(path) == recorded
