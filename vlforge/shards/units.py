"""Restart bookkeeping for work units: what is committed, what is debris."""

from pathlib import Path

from vlforge.shards.atomic import is_temp
from vlforge.shards.manifest import MANIFEST_DIR, MANIFEST_SUFFIX, list_manifests


def committed_units(out_dir: str | Path) -> set[str]:
    return {p.name[: -len(MANIFEST_SUFFIX)] for p in list_manifests(Path(out_dir))}


def tar_unit(tar: Path) -> str:
    """`{prefix}-{k:06d}.tar` -> prefix."""
    return tar.name[: -len(".tar")].rsplit("-", 1)[0]


def cleanup_uncommitted(out_dir: str | Path) -> list[str]:
    """Delete temporary files and tars of units whose manifest never landed."""
    out = Path(out_dir)
    if not out.exists():
        return []
    committed = committed_units(out)
    removed = []
    manifest_dir = out / MANIFEST_DIR
    paths = sorted(out.iterdir()) + (sorted(manifest_dir.iterdir()) if manifest_dir.is_dir() else [])
    for path in paths:
        orphan_tar = path.suffix == ".tar" and tar_unit(path) not in committed
        if path.is_file() and (is_temp(path) or orphan_tar):
            path.unlink()
            removed.append(str(path.relative_to(out)))
    return removed
