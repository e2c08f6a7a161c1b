"""Write-then-rename: a file appears under its final name only when complete."""

import os
from pathlib import Path

TMP_SUFFIX = ".tmp"


def temp_path(final: Path) -> Path:
    """Hidden temporary sibling of `final`; listing and globbing for `*.tar` never see it."""
    return final.with_name(f".{final.name}{TMP_SUFFIX}")


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(TMP_SUFFIX)


def commit(tmp: Path, final: Path) -> None:
    """fsync the data, rename atomically, fsync the directory so the rename survives a crash."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)
    dir_fd = os.open(final.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
