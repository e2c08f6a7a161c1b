"""Per-sample randomness: sample i of a seed is the same image on any worker, in any order."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np


def sample_rng(seed: int, lang: str, index: int, attempt: int = 0) -> np.random.Generator:
    """A generator that depends only on (seed, language, sample index, attempt)."""
    return np.random.default_rng([seed, zlib.crc32(lang.encode("utf-8")), index, attempt])


def uniform(rng: np.random.Generator, span: Sequence[float]) -> float:
    return float(rng.uniform(span[0], span[1])) if span[0] < span[1] else float(span[0])


def integer(rng: np.random.Generator, span: Sequence[int]) -> int:
    """Inclusive on both ends, like SynthDoG's randint(lo, hi + 1)."""
    return int(rng.integers(span[0], span[1] + 1))


def chance(rng: np.random.Generator, prob: float) -> bool:
    """One draw per call whatever prob is, so later draws do not shift when a probability changes."""
    return bool(rng.random() < prob)


def weighted_index(rng: np.random.Generator, weights: Sequence[float]) -> int:
    probs = np.asarray(weights, dtype=np.float64)
    return int(rng.choice(len(probs), p=probs / probs.sum()))
