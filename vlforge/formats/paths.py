"""Image paths that records name, confined to their dataset's folders: a record must not reach other files.

Shared by `vlforge render` (the JSONL file's folder tree) and `vlforge mix` (each source's image folders);
both lift the rule only when asked (`--allow-outside-paths`).
"""

from __future__ import annotations

from pathlib import Path


class ImpossiblePath(ValueError):
    """A name no file can have: it holds a NUL character (the OS refuses it before looking)."""


def inside(root: str | Path, path: str | Path) -> bool:
    """Whether `path` lies in `root`'s folder tree once both are resolved (symlinks, `..`, absolute names);
    ImpossiblePath for a name with a NUL character, which no file has."""
    if "\x00" in str(path):
        raise ImpossiblePath(f"{str(path)!r}: no file name holds a NUL character")
    return Path(root).resolve() in Path(path).resolve().parents
