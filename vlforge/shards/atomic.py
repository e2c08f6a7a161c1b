"""Write-then-rename: a file appears under its final name only when complete.

Inside a fenced run (`fence.Fence.active`) temporary names carry the run's token and every rename
checks the fence first, so a replaced run neither clobbers nor commits the newer run's files, and
records what it renames in the run's journal (`journal.py`), the only proof that vlforge wrote a file.
"""

import contextlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

from vlforge.shards.fence import FencedOut, active_fence
from vlforge.shards.journal import record

TMP_SUFFIX = ".tmp"
_TEMP = re.compile(r"^\.(?P<final>.+?)(?:\.(?P<token>[0-9a-f]{32}))?\.tmp$")


def temp_path(final: Path) -> Path:
    """Hidden temporary sibling of `final`; listing and globbing for `*.tar` never see it."""
    fence = active_fence()
    token = f".{fence.token}" if fence else ""
    return final.with_name(f".{final.name}{token}{TMP_SUFFIX}")


def is_temp(path: Path) -> bool:
    return path.name.startswith(".") and path.name.endswith(TMP_SUFFIX)


def parse_temp(name: str) -> tuple[str, str | None] | None:
    """(final name, run token or None) of a temporary file name; None for any other name."""
    match = _TEMP.match(name)
    return (match["final"], match["token"]) if match else None


def write_json(path: Path, data: object) -> None:
    """JSON under a temporary name, then committed: the file exists only when complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    tmp.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")
    commit(tmp, path)


def commit(tmp: Path, final: Path, requires: Iterable[Path] = ()) -> None:
    """fsync the data, rename atomically, fsync the directory so the rename survives a crash.

    `requires`: files that must still exist at the moment of the rename (a manifest's tars); checked
    under the fence, so a newer run's cleanup cannot remove them in between. Inside a fenced run the
    file is recorded in the run's journal before the rename.
    """
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    _rename(tmp, final, requires)


def commit_dir(tmp: Path, final: Path) -> None:
    """`commit` for a finished folder (`final` must not exist): the folder is fsynced, not each file."""
    _fsync_dir(tmp)
    _rename(tmp, final, ())


def _rename(tmp: Path, final: Path, requires: Iterable[Path]) -> None:
    fence = active_fence()
    with fence.guard() if fence else contextlib.nullcontext():
        missing = [p.name for p in requires if not p.exists()]
        if missing:
            raise FencedOut(f"{final.name}: not committed, its files are gone: {', '.join(missing)}")
        if fence:
            record(fence, final, tmp)
        os.replace(tmp, final)
    _fsync_dir(final.parent)


def _fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
