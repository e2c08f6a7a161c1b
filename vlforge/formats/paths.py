"""Image paths that records name, confined to their dataset's folders: a record must not reach other files.

Shared by `vlforge render` (the JSONL file's folder tree) and `vlforge mix` (each source's image folders);
both lift the rule only when asked (`--allow-outside-paths`).
"""

from __future__ import annotations

from pathlib import Path


def inside(root: str | Path, path: str | Path) -> bool:
    """Whether `path` lies in `root`'s folder tree once both are resolved (symlinks, `..`, absolute names)."""
    return Path(root).resolve() in Path(path).resolve().parents
