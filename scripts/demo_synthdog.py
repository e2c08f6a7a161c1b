"""Synthesize a few dozen English and Chinese OCR samples with the pipeline and save a contact sheet.

    python scripts/demo_synthdog.py OUT_DIR [--count 16] [--seed 0]

Writes OUT_DIR/shards (WebDataset tars + manifests, as `vlforge synthdog` does) and
OUT_DIR/contact_sheet.png: every sample with its line quads drawn (TL corner marked), English on top.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

from PIL import Image, ImageDraw

from vlforge.pipelines.synthdog import Recipe, summary, synthesize_shards
from vlforge.shards.reader import iter_samples
from vlforge.synthdog.config import load_config

TILE = 448
COLUMNS = 8


def annotated(sample: dict) -> Image.Image:
    image = Image.open(io.BytesIO(sample["jpg"])).convert("RGB")
    record = json.loads(sample["json"])
    draw = ImageDraw.Draw(image)
    for line in record["lines"]:
        quad = [tuple(p) for p in line["quad"]]
        draw.polygon(quad, outline=(255, 0, 64), width=1)
        x, y = quad[0]
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(0, 200, 255))
    return image.resize((TILE, TILE), Image.Resampling.BILINEAR) if image.size != (TILE, TILE) else image


def contact_sheet(shard_dir: Path) -> Image.Image:
    samples = sorted(iter_samples(str(shard_dir)), key=lambda s: s["__key__"])  # en_* before zh_*
    tiles = [annotated(s) for s in samples]
    rows = (len(tiles) + COLUMNS - 1) // COLUMNS
    sheet = Image.new("RGB", (COLUMNS * TILE, rows * TILE), (255, 255, 255))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, ((i % COLUMNS) * TILE, (i // COLUMNS) * TILE))
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=16, help="samples per language")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    shards = args.out_dir / "shards"
    recipe = Recipe(lang=["en", "zh"], count=args.count, out=str(shards), seed=args.seed, unit_size=8)
    report, resources = synthesize_shards(recipe, load_config({}))
    print(report.summary(shards))
    print(summary(report, resources))
    sheet = contact_sheet(shards)
    path = args.out_dir / "contact_sheet.png"
    sheet.save(path)
    print(f"contact sheet: {path} ({sheet.width}x{sheet.height})")


if __name__ == "__main__":
    main()
