"""The report's image grids: a sample of kept images with captions, and the dropped thumbnails of each reason.

Kept images come from at most `MAX_TARS` tars, picked and sampled by hash, so a report on billions of rows
opens only a few tars. Dropped images are the thumbnails `clean` kept (`shards.thumbs`) beside committed
manifests only.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import duckdb

from vlforge.formats.sample import SampleError, sample_from_wds
from vlforge.formats.segments import IMAGE_SLOT
from vlforge.shards.manifest import manifest_path
from vlforge.shards.reader import ShardReadError, iter_tar
from vlforge.shards.thumbs import MAX_CAPTION_CHARS, THUMB_DIR, THUMB_SUFFIX, thumbnail
from vlforge.stats.charts import data_uri
from vlforge.stats.manifests import literal, run

MAX_TARS = 3
_COORDINATES = re.compile(r"<(quad|box)>.*?</\1>|</?ref>")  # a caption shows the words, not the coordinates
THUMBS_PER_REASON = 8


@dataclass
class Tile:
    uid: str
    caption: str
    image: str | None  # a data URI; None for a sample without an image


def caption_and_image(wds: dict) -> tuple[str, bytes | None]:
    """A sample's words (no coordinates, no image slots) and its first image's bytes."""
    try:
        sample = sample_from_wds(wds)
    except SampleError as exc:
        return f"(unreadable sample: {exc})", None
    text = _COORDINATES.sub(" ", "".join(s.text for s in sample.segments).replace(IMAGE_SLOT, " "))
    text = " ".join(text.split())
    return text[:MAX_CAPTION_CHARS], sample.images[0] if sample.images else None


def kept_tiles(con: duckdb.DuckDBPyConnection, directory: Path, count: int) -> tuple[list[Tile], list[str]]:
    """Up to `count` kept samples read from their tars, and a note for each tar that could not be read."""
    if count == 0:
        return [], []
    picked = run(con, f"""
        SELECT tar, key, uid FROM samples WHERE dir = ? AND status = 'kept' AND tar IN (
            SELECT tar FROM (SELECT DISTINCT tar FROM samples WHERE dir = ? AND status = 'kept')
            ORDER BY hash(tar) LIMIT {MAX_TARS})
        ORDER BY hash(uid), uid LIMIT {count}""", [str(directory), str(directory)]).fetchall()
    wanted: dict[str, dict[str, str]] = defaultdict(dict)
    for tar, key, uid in picked:
        wanted[tar][key] = uid
    tiles, notes = [], []
    for tar, keys in sorted(wanted.items()):
        try:
            for wds in iter_tar(str(directory / tar)):
                uid = keys.pop(wds.get("__key__"), None)
                if uid is not None:
                    caption, image = caption_and_image(wds)
                    small = thumbnail(image) if image else None
                    tiles.append(Tile(uid, caption, data_uri(small, "image/jpeg") if small else None))
                if not keys:
                    break
        except (ShardReadError, OSError) as exc:
            notes.append(f"{tar}: {exc}")
    return tiles, notes


def committed_thumbs(directory: Path) -> list[Path]:
    """Thumbnail files of units whose manifest is committed (a crashed unit's are not counted)."""
    return [p for p in sorted((directory / THUMB_DIR).glob(f"*{THUMB_SUFFIX}"))
            if manifest_path(directory, p.name[: -len(THUMB_SUFFIX)]).is_file()]


def dropped_tiles(con: duckdb.DuckDBPyConnection, directory: Path) -> dict[str, list[Tile]]:
    """Reason (its text before ': ') -> up to THUMBS_PER_REASON thumbnails of images dropped for it."""
    files = committed_thumbs(directory)
    if not files:
        return {}
    rows = run(con, f"""
        SELECT split_part(reason, ': ', 1) AS r, uid, caption, jpeg
        FROM read_parquet([{", ".join(literal(str(p)) for p in files)}])
        QUALIFY row_number() OVER (PARTITION BY r ORDER BY hash(uid), uid) <= {THUMBS_PER_REASON}
        ORDER BY r, hash(uid), uid""").fetchall()
    tiles: dict[str, list[Tile]] = defaultdict(list)
    for reason, uid, caption, jpeg in rows:
        tiles[reason].append(Tile(uid, caption or "", data_uri(jpeg, "image/jpeg")))
    return dict(tiles)
