"""The demo's stage-2 mixture: its cleaned captions and SynthDoG pages plus small fixtures of every other
public layout (COCO, VQAv2, GQA, TextVQA, DocVQA, ChartQA, OCR-VQA, AI2D, RefCOCO, Visual Genome, GRIT, text,
a two-image conversation), mixed by `vlforge mix`, which prints the realised mix.

Standalone: `python scripts/demo_mix.py --clean demo-out/clean --synthdog demo-out/synthdog --out demo-out`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml
from mix_layouts import recipe, write_all

from vlforge.cli import main as cli
from vlforge.sources.annotations import shards

PER_SHARD_SOURCE = 8  # samples taken from each of the demo's own shard sets


def _count(kind: str, path: Path) -> int:
    """How many samples to take from a shard set (all of them when it has fewer)."""
    found = shards.scan(shards.Options(adapter="shards", kind=kind, paths=[str(path)]), "caption")
    return min(sum(1 for _ in found), PER_SHARD_SOURCE)


def build_mix(out: Path, clean_dir: Path, synthdog_dir: Path) -> Path:
    """Write the fixtures and the recipe under `out`, run `vlforge mix`, return the mixture's directory."""
    paths = write_all(out / "mix-sources")
    extra = [{"name": "web-captions", "task": "caption", "count": _count("clean", clean_dir),
              "from": {"adapter": "shards", "kind": "clean", "paths": [str(clean_dir)]}},
             {"name": "synthdog", "task": "ocr", "count": _count("synthdog", synthdog_dir),
              "from": {"adapter": "shards", "kind": "synthdog", "paths": [str(synthdog_dir)]}}]
    recipe_path = out / "mix-stage2-demo.yaml"
    recipe_path.write_text(yaml.safe_dump(recipe(paths, extra, name="demo-stage2")), encoding="utf-8")
    mixed = out / "mix"
    args = ["mix", "--recipe", str(recipe_path), "--out", str(mixed)]
    print(f"\n$ vlforge {' '.join(args)}", flush=True)
    if cli(args):
        raise SystemExit("vlforge mix failed")
    if cli(["shards", "verify", str(mixed)]):
        raise SystemExit("the mixture does not verify")
    return mixed


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=Path, required=True)
    parser.add_argument("--synthdog", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    args = parser.parse_args()
    build_mix(args.out, args.clean, args.synthdog)
