"""SynthDoG legibility: the share of labelled lines an independent OCR engine reads back, and speed.

Every labelled line of N pages per language is cut out by its quad (rectified to a horizontal strip)
and read by Tesseract (Debian `tesseract-ocr`, `tesseract-ocr-eng`, `tesseract-ocr-chi-sim`; one
process per language and side, page segmentation mode 7: one text line). A line counts as legible
when its character error rate (Levenshtein distance / label length, both after NFKC, without
whitespace, quote style and case, see `normalize`; a strict figure keeps quote style and case) is at
most 10%. Reported per language, per effect (lines on pages where the effect was applied, strong
settings split out), per line ink-height bucket and per measured ink/paper contrast bucket, plus
images/s per core at 448x448 (CPU time, median of alternating timing runs of both code bases).

Baseline, measured in the same run on the same seeds: the synthdog code at BASELINE_REF (before the
legibility bounds), exported with `git archive` into a temporary directory and run in a subprocess
with it first on sys.path. Tesseract is an approximate reader: what it misses is not all unreadable
to a person, so the figures compare code versions, they are not absolute.

Run: .venv/bin/python bench/synthdog_legibility.py [--pages 40] [--baseline-ref REF] [--keep DIR]
(40 pages: ~1 CPU-minute plus Tesseract; the README's figures used --pages 120)
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonline import report

BENCH = "synthdog_legibility"
REPO = Path(__file__).resolve().parent.parent
BASELINE_REF = "a8dbdd9"  # the last commit before the legibility bounds
LANGS = {"en": "eng", "zh": "chi_sim"}
SEED = 5
LEGIBLE_CER = 0.10
STRIP_HEIGHT = 48  # rectified line height handed to Tesseract (its LSTM models read ~30-50 px lines)
HEIGHT_BUCKETS = (0, 8, 10, 12, 14, 16, 20, 28, 1000)  # line ink height after warp, output px
CONTRAST_BUCKETS = (0, 30, 60, 90, 120, 256)  # paper minus ink luminance in the strip


# ------------------------------------------------------------------ worker (runs with either code base)


def page_effects(plan) -> dict[str, bool]:
    """Which of SynthDoG's effects a plan applied, strong settings split out (plan fields exist in both
    code bases). Blur and kernel sizes are in output pixels."""
    fx = plan.effects
    shadow = fx.shadow[0] if fx.shadow else 0
    blur = fx.gaussian_blur or 0.0
    motion = fx.motion_blur[0] if fx.motion_blur else 1
    return {
        "elastic >= 0.5px": bool(plan.elastic and plan.elastic.alpha >= 0.5),
        "noise >= 4": bool(plan.noise and plan.noise.scale >= 4),
        "paper tint": plan.paper.tint is not None,
        "paper texture >= 0.1": plan.paper.alpha >= 0.1,
        "colour shift": fx.color is not None,
        "shadow >= 80": shadow >= 80,
        "contrast >= 1.25": (fx.contrast or 1.0) >= 1.25,
        "brightness <= -24": (fx.brightness or 0) <= -24,
        "motion blur": motion > 1,
        "gaussian blur >= 0.5px": blur >= 0.5,
        "jpeg quality < 70": plan.quality < 70,
    }


def worker(out: Path, pages: int, seed: int, write: bool) -> None:
    """Synthesize the pages (timed, CPU seconds) and, if `write`, write each JPEG with its lines and effects."""
    import vlforge
    from vlforge.synthdog.config import load_config
    from vlforge.synthdog.resources import load_resources, prepare_resources
    from vlforge.synthdog.sample import plan_with_text, synthesize

    config = load_config({})
    spec, _ = prepare_resources(list(LANGS), config)
    res = load_resources(spec, config)
    timing = {"code": str(Path(vlforge.__file__).parent)}
    for lang in LANGS:
        for index in range(1000, 1010):  # warm the per-process caches, as a long run would be
            synthesize(lang, seed, index, config, res)
        cpu = time.process_time()
        samples = [synthesize(lang, seed, index, config, res) for index in range(pages)]
        timing[lang] = (time.process_time() - cpu) / pages
        for index, sample in enumerate(samples if write else []):
            plan = plan_with_text(lang, seed, index, config, res)
            (out / f"{sample.key}.jpg").write_bytes(sample.jpeg)
            page = {"lang": lang, "key": sample.key, "effects": page_effects(plan),
                    "lines": [{"text": line["text"], "quad": line["quad"], "inked": drawn.color != (0, 0, 0)}
                              for line, drawn in zip(sample.record["lines"], plan.lines, strict=True)]}
            with open(out / "pages.jsonl", "a", encoding="utf-8") as f:
                f.write(json.dumps(page, ensure_ascii=False) + "\n")
    (out / "timing.json").write_text(json.dumps(timing))


# ------------------------------------------------------------------ driver


def export_tree(ref: str, into: Path) -> Path:
    """The vlforge package as it was at `ref`, without touching the working tree or the git index."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "vlforge"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into


def run_side(name: str, code_root: Path, out: Path, pages: int, write: bool) -> dict:
    """One worker process on a code base: its CPU seconds per image per language (and the pages if `write`)."""
    out.mkdir(exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(code_root), "OMP_THREAD_LIMIT": "1"}
    flags = [] if write else ["--timing-only"]
    subprocess.run([sys.executable, __file__, "--worker", str(out), "--pages", str(pages), *flags], check=True,
                   env=env)
    timing = json.loads((out / "timing.json").read_text())
    if Path(timing["code"]).resolve() != (code_root / "vlforge").resolve():
        raise SystemExit(f"{name}: the worker imported vlforge from {timing['code']}, not {code_root}")
    return timing


def speed(codes: dict[str, Path], work: Path, pages: int, rounds: int) -> dict[str, dict[str, float]]:
    """CPU seconds per image, the median of `rounds` timing-only runs per side, the sides alternating so
    that both see the same load on a shared machine."""
    runs: dict[str, list[dict]] = {name: [] for name in codes}
    for r in range(rounds):
        for name in (list(codes) if r % 2 == 0 else list(codes)[::-1]):
            runs[name].append(run_side(name, codes[name], work / f"timing-{name}-{r}", pages, write=False))
    return {name: {lang: float(np.median([t[lang] for t in timings])) for lang in LANGS}
            for name, timings in runs.items()}


def strip(image: Image.Image, quad: list[list[float]]) -> Image.Image:
    """The quad rectified to a horizontal grey strip STRIP_HEIGHT high, with a margin of paper around it."""
    from vlforge.synthdog.geometry import apply, box_corners, quad_to_quad

    q = np.array(quad, dtype=np.float64)
    height = max(float(np.linalg.norm(q[3] - q[0]) + np.linalg.norm(q[2] - q[1])) / 2, 1.0)
    width = max(float(np.linalg.norm(q[1] - q[0]) + np.linalg.norm(q[2] - q[3])) / 2, 1.0)
    scale = STRIP_HEIGHT / height
    w = max(1, round(width * scale))
    to_image = quad_to_quad(box_corners(0, 0, w, STRIP_HEIGHT), q)
    pad = STRIP_HEIGHT // 4
    grown = apply(to_image, box_corners(-pad, -pad / 2, w + pad, STRIP_HEIGHT + pad / 2))
    size = (w + 2 * pad, STRIP_HEIGHT + pad)
    source = quad_to_quad(box_corners(0, 0, *size), grown)
    inverse = source / source[2, 2]
    return image.convert("L").transform(size, Image.Transform.PERSPECTIVE, tuple(inverse.flatten()[:8]),
                                        Image.Resampling.BICUBIC)


def contrast(strip_image: Image.Image) -> float:
    """Paper minus ink luminance in a strip: the 90th minus the 5th percentile."""
    values = np.asarray(strip_image, dtype=np.float32)
    return float(np.percentile(values, 90) - np.percentile(values, 5))


def ocr(paths: list[Path], lang: str, work: Path) -> list[str]:
    """Tesseract over many line images in one process (an image list), one text per image."""
    listing = work / f"list-{lang}-{len(paths)}.txt"
    listing.write_text("".join(f"{p}\n" for p in paths))
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
    result = subprocess.run(["tesseract", str(listing), "stdout", "--psm", "7", "-l", LANGS[lang]],
                            check=True, capture_output=True, text=True, env=env)
    texts = result.stdout.split("\f")
    if len(texts) != len(paths):
        raise SystemExit(f"tesseract returned {len(texts)} pages for {len(paths)} images")
    return texts


QUOTES = str.maketrans("‘’‚‛′“”„‟″", "'''''" + '"' * 5)


def normalize(text: str, strict: bool = False) -> str:
    """The characters to compare: NFKC (full-width forms as their ASCII twins), whitespace dropped.

    Unless `strict`, also curly quotes as straight ones and case folded: Tesseract writes typographic
    quotes for straight ones, and a strip cut by an ink-box quad holds no x-height reference, so a word
    without ascenders (`same`, `was`) fills it like capitals and its case cannot be told. Spacing is
    dropped because Tesseract guesses it from gaps (`ofa` for a tight `of a`, spaces between ideographs)."""
    text = "".join(unicodedata.normalize("NFKC", text).split())
    return text if strict else text.translate(QUOTES).casefold()


def cer(label: str, read: str, strict: bool = False) -> float:
    from rapidfuzz.distance import Levenshtein

    ref, hyp = normalize(label, strict), normalize(read, strict)
    return Levenshtein.distance(ref, hyp) / max(len(ref), 1)


def bucket(value: float, edges: tuple) -> str:
    for lo, hi in itertools.pairwise(edges):
        if value < hi:
            return f"{lo}-{hi}" if hi < edges[-1] else f">={lo}"
    return f">={edges[-2]}"


def measure(side: Path) -> list[dict]:
    """One row per labelled line: language, effects of its page, ink height, contrast, CER."""
    rows, strips = [], defaultdict(list)
    with open(side / "pages.jsonl", encoding="utf-8") as f:
        pages = [json.loads(line) for line in f]
    for page in pages:
        image = Image.open(side / f"{page['key']}.jpg")
        for i, line in enumerate(page["lines"]):
            q = np.array(line["quad"])
            cut = strip(image, line["quad"])
            path = side / f"{page['key']}-{i:03d}.png"
            cut.save(path)
            strips[page["lang"]].append(path)
            sides = np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1])
            height = min(sides)
            effects = {**page["effects"], "coloured ink (line)": line["inked"],
                       "perspective (line sides differ > 10%)": bool(height < 0.9 * max(sides))}
            rows.append({"lang": page["lang"], "text": line["text"], "effects": effects,
                         "height": float(height), "contrast": contrast(cut), "path": path})
    for lang, paths in strips.items():
        texts = dict(zip(paths, ocr(paths, lang, side), strict=True))
        for row in rows:
            if row["lang"] == lang:
                row["read"] = texts[row["path"]]
                row["cer"] = cer(row["text"], row["read"])
                row["strict_cer"] = cer(row["text"], row["read"], strict=True)
    return rows


def legible(rows: list[dict], key: str = "cer") -> tuple[float, int]:
    return (sum(r[key] <= LEGIBLE_CER for r in rows) / len(rows) if rows else float("nan")), len(rows)


def table(title: str, groups: dict[str, tuple[list[dict], list[dict]]]) -> None:
    print(f"\n{title:<28} {'baseline':>16} {'now':>16}")
    for name, (base, now) in groups.items():
        (b, nb), (c, nc) = legible(base), legible(now)
        print(f"  {name:<26} {b:7.1%} ({nb:5d}) {c:7.1%} ({nc:5d})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40, help="pages per language and side")
    parser.add_argument("--baseline-ref", default=BASELINE_REF, help="git ref of the baseline synthdog code")
    parser.add_argument("--keep", type=Path, help="keep the pages, strips and OCR results in this directory")
    parser.add_argument("--timing-rounds", type=int, default=3, help="timing-only runs per side (median)")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--timing-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.pages, SEED, write=not args.timing_only)
        return
    if shutil.which("tesseract") is None:
        raise SystemExit("needs the tesseract CLI: "
                         "apt-get install tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim")

    work = Path(tempfile.mkdtemp(prefix="synthdog-legibility-"))
    try:
        codes = {"baseline": export_tree(args.baseline_ref, work / "baseline-code"), "now": REPO}
        sides = {name: work / name for name in codes}
        for name, code in codes.items():
            run_side(name, code, sides[name], args.pages, write=True)
        rows = {name: measure(path) for name, path in sides.items()}
        timing = speed(codes, work, args.pages, args.timing_rounds)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            for name, side_rows in rows.items():
                with open(args.keep / f"{name}.jsonl", "w", encoding="utf-8") as f:
                    for row in side_rows:
                        f.write(json.dumps({**row, "path": str(row["path"])}, ensure_ascii=False) + "\n")
                shutil.copytree(sides[name], args.keep / name, dirs_exist_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"SynthDoG legibility, {args.pages} pages per language, seed {SEED}, 448x448; Tesseract psm 7; "
          f"legible = CER <= {LEGIBLE_CER:.0%}; baseline = synthdog code at {args.baseline_ref}")
    figures = []
    for lang in LANGS:
        base = [r for r in rows["baseline"] if r["lang"] == lang]
        now = [r for r in rows["now"] if r["lang"] == lang]
        groups = {"all lines": (base, now)}
        for effect in now[0]["effects"] if now else []:
            groups[effect] = ([r for r in base if r["effects"][effect]], [r for r in now if r["effects"][effect]])
        table(f"{lang}: by effect", groups)
        heights = sorted({bucket(r["height"], HEIGHT_BUCKETS) for r in base + now},
                         key=lambda s: float(s.lstrip(">=").split("-")[0]))
        table(f"{lang}: by line ink height px", {
            h: ([r for r in base if bucket(r["height"], HEIGHT_BUCKETS) == h],
                [r for r in now if bucket(r["height"], HEIGHT_BUCKETS) == h]) for h in heights})
        contrasts = sorted({bucket(r["contrast"], CONTRAST_BUCKETS) for r in base + now},
                           key=lambda s: float(s.lstrip(">=").split("-")[0]))
        table(f"{lang}: by strip contrast", {
            c: ([r for r in base if bucket(r["contrast"], CONTRAST_BUCKETS) == c],
                [r for r in now if bucket(r["contrast"], CONTRAST_BUCKETS) == c]) for c in contrasts})
        figures.append((f"legible_lines_{lang}", legible(now)[0], "share", legible(base)[0]))
        figures.append((f"legible_lines_strict_{lang}", legible(now, "strict_cer")[0], "share",
                        legible(base, "strict_cer")[0]))
        figures.append((f"median_cer_{lang}", float(np.median([r["cer"] for r in now])), "CER",
                        float(np.median([r["cer"] for r in base]))))
    print()
    for lang in LANGS:
        ours, base = 1 / timing["now"][lang], 1 / timing["baseline"][lang]
        print(f"{lang}: {ours:5.1f} img/s/core now, {base:5.1f} baseline ({ours / base:.2f}x; CPU time of "
              f"synthesize + JPEG encode, median of {args.timing_rounds} alternating runs)")
        figures.append((f"images_per_s_per_core_{lang}", ours, "img/s", base))
    for metric, value, unit, baseline in figures:
        report(BENCH, metric, value, unit, baseline)


if __name__ == "__main__":
    main()
