"""Thumbnails of dropped images, so a report can show what each filter removed.

A unit offers every table of rows it dropped while their image bytes are at hand (chunk by chunk); per drop
reason `DroppedThumbs` keeps the `cap` decodable images whose uid hashes lowest (a bottom-k sample: the same rows
give the same thumbnails in any order and chunking). Only thumbnails are held, never the images, and an image
is decoded only when it enters the sample. `write` puts them into one parquet file per unit,
`DIR/__thumbs/{unit}.thumbs.parquet`, committed atomically before the unit's manifest; the tars never contain
them. A thumbnail file counts only beside its unit's committed manifest.
"""

from __future__ import annotations

import io
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


def _column(table: pa.Table, name: str) -> list:
    return table[name].to_pylist() if name in table.column_names else [None] * table.num_rows


class DroppedThumbs:
    """Per drop reason, thumbnails of the `cap` decodable dropped images whose uid hashes lowest."""

    def __init__(self, cap: int = DEFAULT_CAP) -> None:
        self.cap = cap
        self._best: dict[str, list[tuple[tuple[int, str], dict]]] = {}

    def offer(self, dropped: pa.Table) -> None:
        """Dropped rows with `uid`, `reason` and `image` (and `stage`, `caption` when present); others are ignored.

        Rows are tried lowest rank first, so a chunk decodes about `cap` images per reason, not every row that
        beats the sample so far."""
        if "image" not in dropped.column_names or dropped.num_rows == 0:
            return
        uids, reasons = _column(dropped, "uid"), _column(dropped, "reason")
        stages, captions = _column(dropped, "stage"), _column(dropped, "caption")
        ranked = sorted(((xxhash.xxh64_intdigest((uid or "").encode("utf-8")), uid or ""), i)
                        for i, (uid, ok) in enumerate(zip(uids, dropped["image"].is_valid().to_pylist(), strict=True))
                        if ok)
        for rank, i in ranked:
            best = self._best.setdefault(reasons[i], [])
            if len(best) >= self.cap and rank >= best[-1][0]:
                continue
            small = thumbnail(dropped["image"][i].as_py())
            if small is None:
                continue
            text = captions[i][:MAX_CAPTION_CHARS] if isinstance(captions[i], str) else None
            best.append((rank, {"uid": uids[i], "reason": reasons[i], "stage": stages[i], "caption": text,
                                "jpeg": small}))
            best.sort(key=lambda item: item[0])
            del best[self.cap:]

    def rows(self) -> list[dict]:
        return [row for reason in sorted(self._best) for _, row in self._best[reason]]

    def write(self, out_dir: Path, prefix: str) -> Path | None:
        """Commit the unit's thumbnails (call before its manifest); None, and no file, when there are none."""
        rows = self.rows()
        if not rows:
            return None
        final = thumb_path(out_dir, prefix)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(final)
        pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), tmp)
        commit(tmp, final)
        return final
