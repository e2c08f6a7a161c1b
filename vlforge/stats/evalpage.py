"""The report's evaluation part: the worst-scoring samples of each benchmark with their image, prediction and
references, boxes drawn for grounding (references green, the predicted box red).

`samples.parquet` names each sample by its shard key; the images are read from the shards that `scores.json`
records (`vlforge eval`'s --shards), local files only and never a URL. `vlforge score` records no shards, so
its samples show as text.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
from PIL import ImageDraw

from vlforge.evaluation.output import SCORES_FILE
from vlforge.shards.imageio import open_image, to_rgb
from vlforge.shards.listing import shard_urls
from vlforge.shards.reader import ShardReadError, iter_tar
from vlforge.stats.charts import data_uri
from vlforge.stats.grids import caption_and_image
from vlforge.stats.manifests import run, view_columns

WORST = 6  # samples shown per benchmark
SIDE = 320  # longest side of a shown image, pixels
REFERENCE, PREDICTED = (0, 170, 0), (220, 0, 0)


@dataclass
class Worst:
    benchmark: str
    id: str
    score: float
    prediction: str
    references: list
    image_size: list | None = None
    pred_box: list | None = None
    prompt: str | None = None
    image: str | None = None  # a data URI


def worst_samples(con: duckdb.DuckDBPyConnection, directory: Path, count: int = WORST) -> list[Worst]:
    """The `count` lowest-scoring samples of each benchmark in one evaluation, lowest first."""
    present = view_columns(con, "samples")
    optional = [c for c in ("image_size", "pred_box", "prompt") if c in present]
    names = ["benchmark", "id", "score", "prediction", "references", *optional]
    rows = run(con, f"""
        SELECT {", ".join(f'"{n}"' for n in names)} FROM samples WHERE dir = ?
        QUALIFY row_number() OVER (PARTITION BY benchmark ORDER BY score, id) <= {int(count)}
        ORDER BY benchmark, score, id""", [str(directory)]).fetchall()
    return [Worst(**dict(zip(names, row, strict=True))) for row in rows]


def _local_shards(directory: Path) -> tuple[list[str], str | None]:
    """The tars an evaluation read, and why there are none when there are none."""
    try:
        info = json.loads((directory / SCORES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [], f"{directory / SCORES_FILE}: unreadable ({exc})"
    patterns = info.get("shards") if isinstance(info, dict) else None
    if not patterns:
        return [], "this evaluation recorded no shards (vlforge score), so no images"
    patterns = [patterns] if isinstance(patterns, str) else [str(p) for p in patterns]
    local = [p for p in patterns if "://" not in p]
    try:
        urls = shard_urls(local) if local else []
    except (OSError, ValueError) as exc:
        return [], f"shards {' '.join(patterns)} not readable from here ({exc})"
    return urls, None if urls else f"shards {' '.join(patterns)} are not local files; no images"


def _draw(image: bytes, sample: Worst) -> bytes:
    """The image scaled to SIDE with the reference (green) and predicted (red) boxes in its pixels."""
    with open_image(image) as im:
        shown = to_rgb(im)
    shown.thumbnail((SIDE, SIDE))
    if sample.image_size:
        sx, sy = shown.width / sample.image_size[0], shown.height / sample.image_size[1]
        draw = ImageDraw.Draw(shown)
        boxes = [(b, REFERENCE) for b in sample.references if isinstance(b, list | tuple) and len(b) == 4]
        boxes += [(sample.pred_box, PREDICTED)] if sample.pred_box else []
        for (x1, y1, x2, y2), colour in boxes:
            draw.rectangle((x1 * sx, y1 * sy, x2 * sx, y2 * sy), outline=colour, width=3)
    buffer = io.BytesIO()
    shown.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def attach_images(directory: Path, samples: Sequence[Worst]) -> list[str]:
    """Read each sample's image from the evaluation's shards (stopping once all are found); notes on what failed."""
    urls, note = _local_shards(directory)
    if note:
        return [note]
    wanted = {s.id: s for s in samples}
    notes = []
    for url in urls:
        try:
            for wds in iter_tar(url):
                sample = wanted.pop(wds.get("__key__"), None)
                _, image = caption_and_image(wds) if sample else (None, None)
                if image:
                    try:
                        sample.image = data_uri(_draw(image, sample), "image/jpeg")
                    except (OSError, ValueError) as exc:
                        notes.append(f"{url} {sample.id}: image does not decode ({exc})")
                if not wanted:
                    return notes
        except (ShardReadError, OSError) as exc:
            notes.append(f"{url}: {exc}")
    return notes + ([f"not in the shards: {', '.join(sorted(wanted))}"] if wanted else [])
