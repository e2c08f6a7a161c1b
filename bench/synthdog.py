"""SynthDoG generation: images/s per core, CPU-seconds per image and peak RSS, English and Chinese, 448x448.

Baseline, measured in the same run on the same plans (same layouts, fonts, text, effects):
SynthDoG's per-character text rendering, reimplemented faithfully after synthtiger's TextLayer,
donut's TextBox and synthtiger's Group.merge: a font object loaded per character, an RGBA float32
layer per character scaled to the line height, each merged with a PIL alpha_composite round trip.
Everything else in the baseline is vlforge's own pipeline, so the ratio isolates the text loop;
SynthDoG as a whole (imgaug, float32 layers throughout) measured ~1.1 CPU-s/img (en) and 0.85 (zh)
on this 2-core machine; that ratio is printed for reference only. The run ends with a cProfile
breakdown by stage.

Run: .venv/bin/python bench/synthdog.py [--images 120] [--baseline-images 12]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import pstats
import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonline import report

from vlforge.synthdog.config import load_config
from vlforge.synthdog.fonts import FontLibrary
from vlforge.synthdog.plan import Line
from vlforge.synthdog.resources import load_resources, prepare_resources
from vlforge.synthdog.sample import synthesize

BENCH = "synthdog"
# SynthDoG as a whole on this machine (the measurement, not repeated here): CPU-seconds per image.
SYNTHDOG_REFERENCE_CPU_S = {"en": 1.1, "zh": 0.85}


def synthdog_char_line(line: Line, fonts: FontLibrary) -> np.ndarray:
    """One text box the SynthDoG way: every character is its own TextLayer (font loaded, RGBA image
    drawn, converted to float32, scaled to the box height), then the layers are merged one by one."""
    face = fonts.faces[line.face]
    height = line.ink[3] - line.ink[1] or 1
    layers, left = [], 0.0
    for char in line.text:
        font = ImageFont.truetype(face.path, size=line.size, index=face.index)  # synthtiger: per TextLayer
        ascent, descent = font.getmetrics()
        width = max(int(font.getlength(char)), 1)
        image = Image.new("RGBA", (width, ascent + descent))
        ImageDraw.Draw(image).text((0, 0), char, fill=(*line.color, 255), font=font)
        layer = np.array(image, dtype=np.float32)
        scale = height / (ascent + descent)
        size = (max(1, round(width * scale)), max(1, round((ascent + descent) * scale)))
        layer = np.array(Image.fromarray(layer.astype(np.uint8)).resize(size, Image.Resampling.BILINEAR),
                         dtype=np.float32)
        layers.append((layer, int(left)))
        left += size[0]
    merged = np.zeros((max(1, height), max(1, int(left) + 1), 4), dtype=np.float32)
    for layer, x in layers:  # synthtiger Group.merge -> utils.blend_image per layer
        h, w = min(layer.shape[0], merged.shape[0]), min(layer.shape[1], merged.shape[1] - x)
        dst = Image.fromarray(merged[:h, x:x + w].astype(np.uint8))
        src = Image.fromarray(layer[:h, :w].astype(np.uint8))
        merged[:h, x:x + w] = np.array(Image.alpha_composite(dst, src), dtype=np.float32)
    return merged


def synthdog_char_renderer(size: tuple[int, int], lines: Sequence[Line], fonts: FontLibrary) -> Image.Image:
    """Drop-in for vlforge's text renderer: the per-character layers' alpha placed at each line's ink box."""
    mask = Image.new("L", size)
    for line in lines:
        alpha = synthdog_char_line(line, fonts)[..., 3].astype(np.uint8)
        mask.paste(Image.fromarray(alpha, mode="L"), (line.ink[0], line.ink[1]))
    return mask


def timed(lang: str, indices: range, config, res, text_renderer=None) -> tuple[float, float]:
    """(wall seconds, CPU seconds) to synthesize and encode the samples in this process."""
    kwargs = {"text_renderer": text_renderer} if text_renderer else {}
    wall, cpu = time.perf_counter(), time.process_time()
    for index in indices:
        synthesize(lang, 1, index, config, res, **kwargs)
    return time.perf_counter() - wall, time.process_time() - cpu


STAGES = {  # cProfile function name -> stage
    "plan_sample": "plan (layout, line fitting, rasterizing lines)",
    "rasterize": "  of which: rasterize lines (PIL, 1 call/line)",
    "fit_line": "  of which: fit text to boxes",
    "background": "background (crop, resize, blur)",
    "paper_image": "paper texture",
    "draw_lines": "text mask (paste the planned lines)",
    "elastic": "elastic distortion of the text mask",
    "add_noise": "document noise",
    "warp": "perspective warp of the document",
    "apply_canvas_effects": "image effects (colour, shadow, tone, blurs)",
    "save": "JPEG encode",
}


def profile(config, res, per_lang: int) -> list[tuple[str, float]]:
    profiler = cProfile.Profile()
    profiler.enable()
    for lang in ("en", "zh"):
        for index in range(per_lang):
            synthesize(lang, 2, index, config, res)
    profiler.disable()
    stats = pstats.Stats(profiler).stats
    total = sum(v[2] for v in stats.values())
    by_name: dict[str, float] = {}
    for (_, _, name), (_, _, _, cumulative, _) in stats.items():
        if name in STAGES:
            by_name[name] = by_name.get(name, 0.0) + cumulative
    top = next(v[3] for (f, _, n), v in stats.items() if n == "synthesize" and f.endswith("sample.py"))
    rows = [(STAGES[name], by_name.get(name, 0.0) / top) for name in STAGES]
    return [*rows, ("(total profiled, s)", total)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=120, help="vlforge samples per language")
    parser.add_argument("--baseline-images", type=int, default=12, help="baseline samples per language")
    parser.add_argument("--profile-images", type=int, default=40, help="profiled samples per language")
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    config = load_config({})
    spec, _ = prepare_resources(["en", "zh"], config)
    res = load_resources(spec, config)
    for lang in ("en", "zh"):  # warm the per-worker caches (fonts, textures, noise), as a long run would be
        timed(lang, range(1000, 1010), config, res)

    print("SynthDoG generation, 448x448, one process; baseline: SynthDoG's per-character text loop "
          "(faithful reimplementation) on the same plans")
    figures = []
    for lang in ("en", "zh"):
        wall, cpu = timed(lang, range(args.images), config, res)
        _, base_cpu = timed(lang, range(args.baseline_images), config, res, synthdog_char_renderer)
        # Per core = per CPU-second of this single-threaded process; wall time also counts other
        # processes sharing the machine, so it is printed but not used.
        ours_cpu, base_cpu_img = cpu / args.images, base_cpu / args.baseline_images
        ours_rate, base_rate = 1 / ours_cpu, 1 / base_cpu_img
        print(f"{lang}: vlforge {ours_rate:6.1f} img/s/core ({ours_cpu * 1000:6.1f} CPU-ms/img, "
              f"wall {args.images / wall:5.1f} img/s)   per-char baseline {base_rate:5.2f} img/s/core "
              f"({base_cpu_img * 1000:7.1f} CPU-ms/img)   {ours_rate / base_rate:5.1f}x")
        reference = SYNTHDOG_REFERENCE_CPU_S[lang]
        print(f"    vs whole SynthDoG's {reference} CPU-s/img (reference, not measured in this run): "
              f"{reference / ours_cpu:.0f}x")
        figures.append((f"images_per_s_per_core_{lang}", ours_rate, "img/s", base_rate))
        figures.append((f"cpu_s_per_image_{lang}", ours_cpu, "CPU-s/img", base_cpu_img))
    encoded = synthesize("en", 1, 0, config, res).jpeg
    print(f"sample JPEG size: {len(encoded) / 1024:.0f} KiB; "
          f"decodes to {Image.open(io.BytesIO(encoded)).size}")

    print("\nwhere the time goes (share of synthesize(), cProfile, en+zh):")
    for stage, share in profile(config, res, args.profile_images):
        print(f"  {stage:<50} {share:7.1%}" if share <= 1 else f"  {stage:<50} {share:7.1f}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS: {peak_mib:.0f} MiB (one process: fonts, corpora, caches)\n")
    for metric, value, unit, baseline in figures:
        report(BENCH, metric, value, unit, baseline)
    report(BENCH, "peak_rss", peak_mib, "MiB", None)


if __name__ == "__main__":
    main()
