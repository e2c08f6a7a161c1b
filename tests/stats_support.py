"""Outputs for the stats/report tests: real render and synthdog runs, and manifests in clean's shape.

Expected numbers are computed here with pyarrow/numpy from the manifest files, never with DuckDB.
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from conftest import EXAMPLES

from vlforge.cli import main
from vlforge.pipelines.render import RenderOptions, run_render
from vlforge.pipelines.synthdog import Recipe, synthesize_shards
from vlforge.shards.manifest import list_manifests, write_manifest
from vlforge.shards.thumbs import DroppedThumbs
from vlforge.shards.writer import ShardWriter
from vlforge.synthdog.config import load_config

SOURCES = ("laion", "coyo")
REASONS = ("aspect_ratio>3", "min_side<64", "clip_score<0.28", "http_404", "image_corrupt")


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def stats_json(capsys, *dirs: Path) -> dict:
    code, out, err = run_cli(capsys, "stats", *map(str, dirs), "--json")
    assert code == 0, err
    return json.loads(out)


def clean_like(out: Path, files: int = 4, rows_per_file: int = 500, seed: int = 0) -> Path:
    """Manifests with the columns `vlforge clean` writes (url, row, sizes, scores, caption length, language),
    through the writer clean uses; NULLs and zero sizes where a row was dropped before its value was measured."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True)
    for f in range(files):
        rows = []
        for i in range(rows_per_file):
            dropped = rng.random() < 0.4
            reason = str(rng.choice(REASONS)) if dropped else None
            width, height = int(rng.integers(1, 2000)), int(rng.integers(1, 2000))
            rows.append({
                "uid": f"{f}-{i}", "source": str(rng.choice(SOURCES)), "url": f"http://127.0.0.1:9/{f}/{i}.jpg",
                "file_index": f, "row": i, "width": None if reason == "http_404" else width,
                "height": 0 if reason == "image_corrupt" else height,
                "clip_score": None if rng.random() < 0.1 else float(rng.normal(0.3, 0.05)),
                "caption_chars": int(rng.integers(5, 300)),
                "lang": [None, "en", "en", "en", "zh"][int(rng.integers(0, 5))],
                "status": "dropped" if dropped else "kept", "reason": reason,
                "stage": {None: None, "http_404": "download", "image_corrupt": "image"}.get(reason, "before"),
                "tar": None if dropped else f"u{f}-000000.tar", "key": None if dropped else f"k{i}"})
        write_manifest(out, f"u{f}", rows)
    return out


def manifest_table(out: Path) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in list_manifests(out)], promote_options="permissive")


def render_dir(out: Path, tmp: Path) -> Path:
    """`vlforge render` of three bundled tasks plus a file with one good and two bad lines (on-error skip)."""
    for task in ("caption", "grounding", "vqa"):
        run_render([EXAMPLES / f"{task}.jsonl"], out, RenderOptions(task=task))
    src = tmp / "bad"
    shutil.copytree(EXAMPLES / "images", src / "images")
    good = (EXAMPLES / "caption.jsonl").read_text().splitlines()[0]
    (src / "mixed.jsonl").write_text(f"{good}\n{{\"image\": \"images/missing.jpg\", \"caption\": \"x\"}}\nnot json\n")
    run_render([src / "mixed.jsonl"], out, RenderOptions(task="caption", on_error="skip"))
    return out


def synthdog_dir(out: Path) -> Path:
    recipe = Recipe(lang=["en", "zh"], count=3, out=str(out), unit_size=3)
    synthesize_shards(recipe, load_config({"canvas": {"size": 224}}))
    return out


XSS_CAPTION = "<script>document.title='pwned'</script><img src=x onerror=alert(1)> a cat"


def clean_shards(out: Path) -> Path:
    """Tars, thumbnails and manifest as `clean`'s write_unit leaves them (shard writer, then thumbs, manifest last):
    kept photographs with captions, and dropped ones of two reasons with their images, one caption hostile."""
    from test_clean_support import jpeg, photo

    names = ["astronaut", "coffee", "rocket", "chelsea", "hubble_deep_field", "camera"]
    images = {n: jpeg(photo(n)) for n in names}
    dropped = pa.table({"uid": [f"d-{n}" for n in names], "reason": ["min_side<64", "aspect_ratio>3"] * 3,
                        "stage": ["image_size_real", "aspect_ratio_real"] * 3,
                        "caption": [XSS_CAPTION, *(f"dropped {n}" for n in names[1:])],
                        "image": pa.array([images[n] for n in names], pa.binary())})
    with ShardWriter(out, "web-0000-000000000", max_samples=4) as writer:
        for i, name in enumerate(names):
            caption = XSS_CAPTION if i == 0 else f"A photograph of {name.replace('_', ' ')}"
            writer.write(f"k{i}", {"jpg": images[name], "txt": caption, "json": {"uid": f"u-{name}"}},
                         {"uid": f"u-{name}", "source": "web", "url": f"http://127.0.0.1:9/{name}.jpg", "row": i,
                          "width": 512, "height": 400 + i, "clip_score": 0.3 + i / 100, "caption_chars": len(caption),
                          "lang": "en"})
        for row in dropped.select(["uid", "reason", "stage"]).to_pylist():
            writer.drop({"uid": row["uid"], "source": "web", "url": "http://127.0.0.1:9/x.jpg", "row": 99,
                         "width": 30, "height": 20, "lang": "en"}, reason=row["reason"], stage=row["stage"])
        thumbs = DroppedThumbs()
        thumbs.offer(dropped)
        thumbs.write(out, "web-0000-000000000")
    return out


@functools.cache
def pipeline_outputs(base: Path) -> dict[str, Path]:
    """Real render and synthdog runs, built once per test session (they take tens of seconds) and only read."""
    base.mkdir()
    return {"render": render_dir(base / "render", base), "synthdog": synthdog_dir(base / "synthdog")}


def metrics_rows() -> list[dict]:
    """A short run as vlforge/training/loop.py logs it: a row per step, an evaluation row every 5 steps."""
    rows = []
    for step in range(1, 21):
        rows.append({"step": step, "loss": 4.0 - 0.1 * step, "lr": 1e-4 * min(1.0, step / 5), "grad_norm": 1.0,
                     "tokens_per_s": 1000.0 + 10 * step, "samples_per_s": 2.0 + 0.1 * step,
                     "padding": 0.1 if step % 2 else 0.3, "seconds": 0.5})
        if step % 5 == 0:
            rows.append({"step": step, "eval": {"caption": 3.2 - 0.05 * step, "ocr": 4.0 - 0.1 * step}})
    return rows


def train_dir(out: Path, rows: list[dict] | None = None) -> Path:
    out.mkdir(parents=True)
    (out / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows or metrics_rows()))
    return out


# What the stand-in model answers in eval_dir: the whole image, so every reference box scores IoU < 0.5.
WHOLE_IMAGE = "(0,0),(1000,1000)</box>"


def eval_dir(out: Path) -> Path:
    """A grounding evaluation as `vlforge eval --out` writes it (same `evaluate` and `write_results`), on shards
    rendered from the bundled referring expressions; the model is a function answering WHOLE_IMAGE."""
    from vlforge.evaluation.evaluate import evaluate
    from vlforge.evaluation.output import write_results
    from vlforge.evaluation.samples import read_eval_samples

    shards = out.parent / f"{out.name}-shards"
    run_render([EXAMPLES / "ref_grounding.jsonl"], shards, RenderOptions(task="ref_grounding"))
    scored = evaluate(read_eval_samples([str(shards)]), lambda images, prompts, budget: [WHOLE_IMAGE] * len(prompts),
                      "grounding")
    write_results(out, scored, {"checkpoint": "stand-in", "shards": [str(shards)]})
    return out
