"""Thumbnails of dropped images, so a report can show what each filter removed.

A unit keeps, per drop reason, the `cap` dropped images whose uid hashes lowest (a bottom-k sample: the same
rows give the same thumbnails in any order, and at most `cap` candidates per reason are held). They are written
as small JPEGs into one parquet file per unit, `DIR/__thumbs/{unit}.thumbs.parquet`, committed atomically before
the unit's manifest; the tars never contain them. A thumbnail file counts only beside its unit's manifest.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from vlforge.shards.atomic import commit, temp_path
from vlforge.shards.imageio import ImageRejected, open_image, to_rgb

THUMB_DIR = "__thumbs"
THUMB_SUFFIX = ".thumbs.parquet"
THUMB_SIDE = 160
THUMB_QUALITY = 75
DEFAULT_CAP = 6
MAX_CAPTION_CHARS = 200
SCHEMA = pa.schema([("uid", pa.string()), ("reason", pa.string()), ("stage", pa.string()),
                    ("caption", pa.string()), ("jpeg", pa.binary())])


def thumb_path(out_dir: Path, prefix: str) -> Path:
    return Path(out_dir) / THUMB_DIR / f"{prefix}{THUMB_SUFFIX}"


def thumbnail(data: bytes, side: int = THUMB_SIDE) -> bytes | None:
    """A JPEG at most `side` pixels a side; None for bytes that do not decode (their reason says why)."""
    try:
        with open_image(data) as im:
            im.draft("RGB", (side, side))  # JPEG: decode at a reduced scale
            small = to_rgb(im)
    except (ImageRejected, OSError, ValueError):
        return None
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=THUMB_QUALITY)
    return buffer.getvalue()


def _rank(uid: str | None) -> int:
    return xxhash.xxh64_intdigest((uid or "").encode("utf-8"))


def pick(dropped: Sequence[pa.Table], cap: int = DEFAULT_CAP) -> list[dict]:
    """Per reason, the `cap` rows with an image whose uid ranks lowest; only those rows are materialised."""
    chosen: dict[str, list[tuple[int, str, int, int]]] = {}
    for t, table in enumerate(dropped):
        if "image" not in table.column_names or table.num_rows == 0:
            continue
        has_image = table["image"].is_valid().to_pylist()
        uids, reasons = table["uid"].to_pylist(), table["reason"].to_pylist()
        for i, (uid, reason, ok) in enumerate(zip(uids, reasons, has_image, strict=True)):
            if ok:
                best = chosen.setdefault(reason, [])
                best.append((_rank(uid), uid or "", t, i))
                if len(best) > cap:
                    best.sort()
                    best.pop()
    rows = []
    for reason in sorted(chosen):
        for _, uid, t, i in sorted(chosen[reason]):
            table = dropped[t]
            row = {name: table[name][i].as_py() for name in ("stage", "caption") if name in table.column_names}
            caption = row.get("caption")
            rows.append({"uid": uid, "reason": reason, "stage": row.get("stage"),
                         "caption": caption[:MAX_CAPTION_CHARS] if isinstance(caption, str) else None,
                         "image": table["image"][i].as_py()})
    return rows


def write_dropped_thumbs(out_dir: Path, prefix: str, dropped: Sequence[pa.Table],
                         cap: int = DEFAULT_CAP) -> Path | None:
    """Thumbnails of a unit's dropped images (tables with `uid`, `reason`, `image`), committed; None if none."""
    rows = []
    for row in pick(dropped, cap):
        small = thumbnail(row.pop("image"))
        if small is not None:
            rows.append({**row, "jpeg": small})
    if not rows:
        return None
    final = thumb_path(out_dir, prefix)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(final)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)
    commit(tmp, final)
    return final
