"""Restart bookkeeping for work units: what is committed, what is debris."""

import re
from collections.abc import Collection, Iterator
from pathlib import Path

from vlforge.shards.atomic import parse_temp
from vlforge.shards.journal import Written
from vlforge.shards.manifest import MANIFEST_DIR, MANIFEST_SUFFIX, list_manifests
from vlforge.shards.thumbs import THUMB_DIR, THUMB_SUFFIX

TAR_NAME = re.compile(r"^(?P<unit>.+)-\d{6}\.tar$")
UNIT_FILE_DIRS = {MANIFEST_DIR: MANIFEST_SUFFIX, THUMB_DIR: THUMB_SUFFIX}  # folder -> `{unit}{suffix}` files


class UnrecordedFile(ValueError):
    """A file with the name of a unit's file that no run of the directory recorded writing."""


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


def cleanup_uncommitted(out_dir: str | Path, units: Collection[str], tokens: Collection[str] | None = None
                        ) -> list[str]:
    """Delete what the runs of `tokens` left of `units` without committing them; nothing else.

    Removed: temporary files of these units tagged with one of `tokens`, and their tars when the unit
    has no manifest and a run's journal lists the tar as it is now. A tar of such a unit that no
    journal lists (a user's file, or vlforge's file changed since) would be overwritten when the unit
    is redone, so it is refused (UnrecordedFile, before anything is deleted). Files of other names or
    units are never touched. `tokens=None` is for a folder no run claimed (a `ShardWriter` used on its
    own, unfenced and unrecorded): there names alone decide, and untagged temporary files go too.
    """
    out = Path(out_dir)
    if not out.exists():
        return []
    units = set(units)
    committed = committed_units(out)
    claimed = tokens is not None
    tokens = set(tokens or ())
    written = Written(out, tokens)
    doomed, unrecorded = [], []
    for path in _files(out):
        unit = unit_of(path)
        if unit not in units or not path.is_file():
            continue
        temp = parse_temp(path.name)
        if temp is not None:
            if temp[1] in tokens or (temp[1] is None and not claimed):
                doomed.append(path)
        elif path.suffix == ".tar" and unit not in committed:
            (doomed if path in written or not claimed else unrecorded).append(path)
    if unrecorded:
        names = ", ".join(p.name for p in unrecorded[:5]) + (f" and {len(unrecorded) - 5} more"
                                                            if len(unrecorded) > 5 else "")
        raise UnrecordedFile(f"--out {out}: {names}: named like a tar of an unfinished unit, but no vlforge run "
                             "here wrote it as it is now; move it away (the unit is redone under that name) "
                             "or use a new directory")
    for path in doomed:
        path.unlink()
    return [str(p.relative_to(out)) for p in doomed]
