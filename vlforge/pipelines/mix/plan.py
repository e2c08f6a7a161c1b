"""Planning a mix before any work: stream every source to disk, decide how many records each gives, in which order.

Counts: `count` sources give exactly that many; weighted sources share the rest (`total` minus the counts,
or by default the largest mix that repeats none of them) by largest-remainder apportionment of their
weights. The order is computed from counts alone, never from the records, so planning memory is
O(units x sources) whatever the sources hold:
- each source is read in a seeded pseudo-random permutation of its records (a Feistel network over the
  record indices, so position t of the source's stream is computed, not stored; a new permutation per
  pass when `repeat`);
- the output is cut into units of `samples_per_unit`; how many samples each unit takes from each source is
  drawn unit after unit from a multivariate hypergeometric distribution (exactly the composition of a
  uniformly shuffled sequence of all draws), and each unit shuffles its own stretch.
So every stretch of the output mixes the tasks by weight. Same recipe, inputs and seed: the same plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vlforge.pipelines.mix.recipe import MixError, MixRecipe
from vlforge.pipelines.mix.spill import Spilled, spill
from vlforge.sources.annotations import ADAPTERS, SourceError

_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
FEISTEL_ROUNDS = 4


@dataclass
class Plan:
    seed: int
    have: list[int]  # records each source holds
    targets: dict[str, int]  # how many each source gives
    unit_size: int
    counts: np.ndarray  # (units, sources): samples each unit takes from each source

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def starts(self) -> np.ndarray:
        """(units, sources): how far into each source's stream each unit starts."""
        return np.cumsum(self.counts, axis=0) - self.counts

    def order(self) -> Iterator[tuple[int, int]]:
        """(source index, record index) in output order (tests and small mixes: it walks every unit)."""
        starts = self.starts()
        for k in range(len(self.counts)):
            for _, source, index in unit_entries(self.seed, k, k * self.unit_size, self.counts[k], starts[k],
                                                 self.have):
                yield source, index


def scan_sources(recipe: MixRecipe, folder: Path) -> list[Spilled]:
    """Stream every source's Items into `folder`; a missing or malformed source fails here, naming it."""
    spilled = []
    for i, source in enumerate(recipe.sources):
        try:
            spilled.append(spill(ADAPTERS[source.source.adapter].scan(source.source, source.task), folder, i))
        except (SourceError, OSError) as exc:
            raise MixError(f"sources.{i} ({source.name}, {source.source.adapter}): {exc}") from None
    return spilled


def apportion(total: int, weights: list[float]) -> list[int]:
    """Integers summing to `total`, proportional to `weights` (largest remainder, ties to the earlier one)."""
    exact = [total * w / sum(weights) for w in weights]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(weights)), key=lambda i: (counts[i] - exact[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def targets(recipe: MixRecipe, available: dict[str, int]) -> dict[str, int]:
    out = {s.name: s.count for s in recipe.sources if s.count is not None}
    weighted = [s for s in recipe.sources if s.weight is not None]
    if recipe.total is not None:
        rest = recipe.total - sum(out.values())
        if rest < 0:
            raise MixError(f"total: {recipe.total} is less than the sources' exact counts ({sum(out.values())})")
    elif weighted:
        finite = [available[s.name] * sum(w.weight for w in weighted) / s.weight for s in weighted if not s.repeat]
        if not finite:
            raise MixError("total: required when every weighted source repeats")
        rest = math.floor(min(finite) + 1e-9)
    else:
        rest = 0
    out.update(zip([s.name for s in weighted], apportion(rest, [s.weight for s in weighted]), strict=True))
    for i, source in enumerate(recipe.sources):
        need, have = out[source.name], available[source.name]
        if need and not have:
            raise MixError(f"sources.{i} ({source.name}): has no records")
        if need > have and not source.repeat:
            raise MixError(f"sources.{i} ({source.name}): the mix needs {need} records but it has {have} "
                           f"(lower total, count or weight, or set repeat: true)")
    return out


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a well-spread 64-bit hash of each value (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


def permute(positions: np.ndarray, n: int, keys: np.ndarray) -> np.ndarray:
    """A keyed bijection of [0, n) applied to `positions`: a Feistel network on the smallest even bit width
    that holds n, cycle-walking values that land outside [0, n) (at most ~4 walks on average)."""
    half = max(1, (int(n - 1).bit_length() + 1) // 2)
    shift, mask = np.uint64(half), np.uint64((1 << half) - 1)
    x = np.asarray(positions, dtype=np.uint64).copy()
    todo = np.ones(len(x), dtype=bool)
    while todo.any():
        left, right = x[todo] >> shift, x[todo] & mask
        for key in keys:
            left, right = right, left ^ (_mix(right ^ key) & mask)
        x[todo] = (left << shift) | right
        todo = x >= np.uint64(n)
    return x.astype(np.int64)


def stream_indices(seed: int, source: int, have: int, positions: np.ndarray) -> np.ndarray:
    """Record indices at these positions of a source's stream: pass p = position // have is the p-th
    seeded permutation of the source's `have` records, so no record repeats before every one was drawn."""
    passes, within = np.divmod(np.asarray(positions, dtype=np.int64), have)
    out = np.empty(len(within), dtype=np.int64)
    for p in np.unique(passes):
        keys = np.random.SeedSequence([seed, source, int(p)]).generate_state(FEISTEL_ROUNDS, np.uint64)
        at = passes == p
        out[at] = permute(within[at], have, keys)
    return out


def unit_entries(seed: int, unit: int, start: int, counts: np.ndarray, starts: np.ndarray, have: list[int]
                 ) -> list[tuple[int, int, int]]:
    """(position, source index, record index) of one unit's stretch: its draws from each source, shuffled."""
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng([seed, len(counts), unit]).shuffle(labels)
    index = np.empty(len(labels), dtype=np.int64)
    for source in np.flatnonzero(counts):
        positions = int(starts[source]) + np.arange(int(counts[source]))
        index[labels == source] = stream_indices(seed, int(source), have[source], positions)
    return [(start + p, int(s), int(j)) for p, (s, j) in enumerate(zip(labels, index, strict=True))]


@dataclass(frozen=True)
class UnitSource:
    """What a unit needs of one recipe source: its name, task, language and the image folders a record may name
    (None: any file, `allow_outside_paths`)."""

    name: str
    task: str
    lang: str
    roots: tuple[str, ...] | None


@dataclass(frozen=True)
class ImageOptions:
    max_side: int | None  # longer side cap; None: never resize
    quality: int  # JPEG quality when an image must be re-encoded
    phash: bool  # compute perceptual hashes


@dataclass(frozen=True)
class MixWork:
    """A mix unit's payload: its counts and stream offsets and the recipe's few settings, never records or
    hash sets, so it stays small whatever the mix."""

    out: str
    plan_dir: str
    sources: tuple[UnitSource, ...]
    images: ImageOptions
    max_samples: int | None
    max_bytes: int | None
    seed: int
    have: list[int]
    exclude_eval: bool
    drop_duplicates: Literal["none", "sha256", "phash"]
    unit: int
    start: int
    counts: list[int]
    starts: list[int]

    def entries(self) -> list[tuple[int, int, int]]:
        """(position, source index, record index) of this unit's stretch of the order."""
        return unit_entries(self.seed, self.unit, self.start, np.asarray(self.counts), np.asarray(self.starts),
                            self.have)


def unit_counts(seed: int, want: list[int], size: int) -> np.ndarray:
    """(units, sources): how many draws each unit of `size` positions takes from each source, drawn unit
    after unit from what is left (multivariate hypergeometric), so the units' compositions are those of a
    uniform shuffle of all the draws."""
    rng = np.random.default_rng([seed, len(want)])
    remaining = np.asarray(want, dtype=np.int64)
    rows = []
    while remaining.sum() > 0:
        take = rng.multivariate_hypergeometric(remaining, min(size, int(remaining.sum())))
        rows.append(take)
        remaining = remaining - take
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), len(want))


def make_plan(recipe: MixRecipe, spilled: list[Spilled]) -> Plan:
    have = [s.count for s in spilled]
    want = targets(recipe, {source.name: n for source, n in zip(recipe.sources, have, strict=True)})
    counts = unit_counts(recipe.seed, [want[s.name] for s in recipe.sources], recipe.samples_per_unit)
    return Plan(recipe.seed, have, want, recipe.samples_per_unit, counts)
