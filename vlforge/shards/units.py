"""Restart bookkeeping for work units: what is committed, what is debris."""

import re
from collections.abc import Collection, Iterator
from pathlib import Path

from vlforge.shards.atomic import parse_temp
from vlforge.shards.manifest import MANIFEST_DIR, MANIFEST_SUFFIX, list_manifests
from vlforge.shards.thumbs import THUMB_DIR, THUMB_SUFFIX

TAR_NAME = re.compile(r"^(?P<unit>.+)-\d{6}\.tar$")
UNIT_FILE_DIRS = {MANIFEST_DIR: MANIFEST_SUFFIX, THUMB_DIR: THUMB_SUFFIX}  # folder -> `{unit}{suffix}` files


def committed_units(out_dir: str | Path) -> set[str]:
    return {p.name[: -len(MANIFEST_SUFFIX)] for p in list_manifests(Path(out_dir))}


def tar_unit(tar: Path) -> str | None:
    """`{prefix}-{k:06d}.tar` -> prefix; None for a name the shard writer never gives."""
    match = TAR_NAME.match(tar.name)
    return match["unit"] if match else None


def unit_of(path: Path) -> str | None:
    """The unit a shard writer's file belongs to: a tar, a per-unit file (manifest, thumbnails) or a
    temporary file of either; None for any other name."""
    name = path.name
    if temp := parse_temp(name):
        name = temp[0]
    suffix = UNIT_FILE_DIRS.get(path.parent.name)
    if suffix is not None:
        return name[: -len(suffix)] if name.endswith(suffix) else None
    return tar_unit(path.with_name(name))


def _files(out: Path) -> Iterator[Path]:
    yield from sorted(out.iterdir())
    for folder in UNIT_FILE_DIRS:
        if (out / folder).is_dir():
            yield from sorted((out / folder).iterdir())


def cleanup_uncommitted(out_dir: str | Path, units: Collection[str], tokens: Collection[str] = ()) -> list[str]:
    """Delete what the shard writer left of `units` without committing them; nothing else.

    Removed: temporary files of these units (untagged, or tagged with one of `tokens`) and their tars
    when the unit has no manifest. A file of any other name, or of another unit, is never touched.
    """
    out = Path(out_dir)
    if not out.exists():
        return []
    units = set(units)
    committed = committed_units(out)
    removed = []
    for path in _files(out):
        unit = unit_of(path)
        if unit not in units or not path.is_file():
            continue
        temp = parse_temp(path.name)
        own_temp = temp is not None and (temp[1] is None or temp[1] in tokens)
        orphan_tar = temp is None and path.suffix == ".tar" and unit not in committed
        if own_temp or orphan_tar:
            path.unlink()
            removed.append(str(path.relative_to(out)))
    return removed
