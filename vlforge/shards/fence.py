"""Fencing: only the newest run on an output directory may commit files into it.

Every run writes a fresh token into `DIR/__vlforge/fence`. Its tasks carry that token (`Fence.active`)
and each commit checks, under a shared `flock` of the fence file, that the file still holds their
token before renaming anything into place. A new run replaces the token under the exclusive lock,
so once it has started, the orphaned workers of a killed run can no longer commit, and no commit of
theirs can be half-way through while the new run cleans up. Temporary files of a fenced task carry
the token in their names, so two runs never write the same temporary file.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = "__vlforge"  # vlforge's own bookkeeping; `__` keeps it out of Hugging Face datasets and Ray Data
FENCE_FILE = f"{STATE_DIR}/fence"
_ACTIVE: contextvars.ContextVar[Fence | None] = contextvars.ContextVar("vlforge_fence", default=None)


class FencedOut(RuntimeError):
    """A commit of a run that a newer run on the same directory has replaced."""


@dataclass(frozen=True)
class Fence:
    out_dir: str
    token: str

    @classmethod
    def new(cls, out_dir: str | Path) -> Fence:
        return cls(str(out_dir), uuid.uuid4().hex)

    @property
    def path(self) -> Path:
        return Path(self.out_dir) / FENCE_FILE

    def install(self) -> None:
        """Make this the only run allowed to commit (waits for commits in progress to finish)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, self.token.encode(), 0)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock

    @contextlib.contextmanager
    def guard(self) -> Iterator[None]:
        """Hold off a newer run while committing; FencedOut if one has already started."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            raise FencedOut(f"{self.out_dir}: fence file gone; this run no longer owns the directory") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            current = os.pread(fd, 64, 0).decode(errors="replace")
            if current != self.token:
                raise FencedOut(f"{self.out_dir}: a newer run (token {current[:8]}) owns the directory; "
                                f"commit of run {self.token[:8]} refused")
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def active(self) -> Iterator[Fence]:
        """Within this block, temporary names carry the token and commits check it."""
        reset = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(reset)


def active_fence() -> Fence | None:
    return _ACTIVE.get()
