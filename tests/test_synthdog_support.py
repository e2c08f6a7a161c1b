"""Shared pieces for the SynthDoG tests: resources prepared once per test process, independent checks.

The geometry helpers here (point-outside-quad distance, polygon area) and the font reader are
written separately from vlforge.synthdog so the tests do not grade the code with itself.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTCollection, TTFont

from vlforge.pipelines.executor import UnitStats
from vlforge.pipelines.synthdog import make_units, process_unit
from vlforge.synthdog.config import SynthConfig, load_config
from vlforge.synthdog.resources import Resources, load_resources, prepare_resources

ROOT = Path(__file__).resolve().parent.parent
RECIPE = ROOT / "recipes" / "synthdog.yaml"


@lru_cache(maxsize=8)
def _spec(langs: tuple[str, ...], fonts: tuple[str, ...] | None, corpora: tuple | None) -> dict:
    spec, _ = prepare_resources(list(langs), load_config({}), list(fonts) if fonts else None,
                                {k: list(v) for k, v in corpora} if corpora else None)
    return spec


def resources(config: SynthConfig, langs: tuple[str, ...] = ("en", "zh"),
              fonts: tuple[str, ...] | None = None, corpora: dict[str, list[str]] | None = None) -> Resources:
    """Loaded resources for a config; checking fonts and corpora happens once per combination."""
    key = tuple(sorted((k, tuple(v)) for k, v in corpora.items())) if corpora else None
    return load_resources(_spec(langs, fonts, key), config)


def generate_here(out: Path, langs: list[str], count: int, unit_size: int, seed: int,
                  config: SynthConfig) -> list[UnitStats]:
    """A run's units made one after the other in this process (one worker, no Ray); their stats."""
    spec, _ = prepare_resources(langs, config)
    return [process_unit(unit) for unit in make_units(langs, count, unit_size, str(out), seed, config,
                                                      spec)]


@lru_cache(maxsize=64)
def font_codepoints(path: str, index: int) -> frozenset[int]:
    """The code points the face has a real glyph for (not .notdef), read with fontTools directly."""
    with open(path, "rb") as f:
        collection = f.read(4) == b"ttcf"
    font = TTCollection(path).fonts[index] if collection else TTFont(path)
    notdef = font.getGlyphOrder()[0]
    return frozenset(cp for cp, glyph in font.getBestCmap().items() if glyph != notdef)


def outside_distance(points: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """How far each point lies outside a convex quad given clockwise on screen (TL, TR, BR, BL); 0 inside."""
    distance = np.zeros(len(points))
    for i in range(4):
        a, b = quad[i], quad[(i + 1) % 4]
        edge = b - a
        outward = np.array([edge[1], -edge[0]]) / np.hypot(*edge)
        distance = np.maximum(distance, (points - a) @ outward)
    return distance


def polygon_area(quad: np.ndarray) -> float:
    x, y = quad[:, 0], quad[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def write_corpus(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# Plain ASCII English and common Chinese, so every font in the pools draws every character and each
# line must be an exact piece of the text.
ENGLISH_TEXT = (
    "The quick brown fox jumps over the lazy dog while internationalization committees deliberate "
    "about extraordinarily long words. Reading order matters: lines go top to bottom and left to right. "
    "Nothing here is split, hyphenated or otherwise broken across two lines of a document page. "
) * 40
CHINESE_TEXT = (
    "我们今天在北京召开会议，讨论经济发展和社会进步的问题。大家认为，只有坚持改革开放，"
    "才能实现国家的长期繁荣与稳定。会议还研究了教育、科技和文化事业的发展计划。"
) * 60
