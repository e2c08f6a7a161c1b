"""One OCR sample: plan, render, encode, label.

The JSON is both an OCR sample (lines with pixel quads, size, language, fonts, seed) and a rendered
Qwen-VL task sample (`task`, `source`, `segments` with "OCR with grounding:").
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from vlforge.formats.tasks import ocr_segments
from vlforge.synthdog.config import SynthConfig
from vlforge.synthdog.plan import Plan, plan_sample
from vlforge.synthdog.render import TextRenderer, draw_lines, render
from vlforge.synthdog.resources import Resources
from vlforge.synthdog.sampling import sample_rng

MAX_ATTEMPTS = 4  # a layout can come out empty (tiny document): re-plan with the next attempt number


class EmptySample(ValueError):
    """No text line fitted on the document in any attempt."""


@dataclass(frozen=True)
class Sample:
    key: str
    jpeg: bytes
    record: dict
    row: dict  # manifest values


def identity_row(lang: str, seed: int, index: int) -> dict:
    """The manifest values every sample has, kept or dropped."""
    return {"uid": f"synthdog-{lang}-s{seed}-{index:09d}", "source": f"synthdog-{lang}", "lang": lang,
            "index": index}


def _pixels(quad: np.ndarray, width: int, height: int) -> list[list[float]]:
    """Quad corners for the JSON: inside the image (ink cut by its edge has no label beyond it), 0.01 px."""
    clipped = np.clip(quad, 0, [width, height])
    return [[round(float(x), 2), round(float(y), 2)] for x, y in clipped]


def plan_with_text(lang: str, seed: int, index: int, config: SynthConfig, res: Resources) -> Plan:
    for attempt in range(MAX_ATTEMPTS):
        plan = plan_sample(sample_rng(seed, lang, index, attempt), lang, attempt, config, res)
        if plan.lines:
            return plan
    raise EmptySample(f"no text line fitted in {MAX_ATTEMPTS} layouts")


def synthesize(lang: str, seed: int, index: int, config: SynthConfig, res: Resources,
               text_renderer: TextRenderer = draw_lines) -> Sample:
    plan = plan_with_text(lang, seed, index, config, res)
    rendered = render(plan, res, text_renderer)
    buffer = io.BytesIO()
    rendered.image.save(buffer, format="JPEG", quality=plan.quality)
    width, height = plan.size
    lines = [
        {"text": line.text, "quad": _pixels(quad, width, height), "font": res.fonts.faces[line.face].label}
        for line, quad in zip(plan.lines, plan.quads(), strict=True)
    ]
    row = identity_row(lang, seed, index)
    record = {
        "task": "ocr",
        "source": row["source"],
        "segments": ocr_segments(lines, width, height),
        "lines": lines,
        "width": width,
        "height": height,
        "lang": lang,
        "fonts": sorted({line["font"] for line in lines}),
        "seed": seed,
        "index": index,
        "meta": {"uid": row["uid"], "attempt": plan.attempt, "background": rendered.background,
                 "quality": plan.quality},
    }
    row.update(width=width, height=height, lines=len(lines), chars=sum(len(line["text"]) for line in lines),
               background=rendered.background, unreadable_backgrounds=rendered.unreadable_backgrounds,
               fonts=record["fonts"])  # for `vlforge stats`: fonts per OCR set without opening tars
    return Sample(f"{lang}_{index:09d}", buffer.getvalue(), record, row)
