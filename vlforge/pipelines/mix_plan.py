"""Planning a mix before any work: read every source, decide how many records each gives, in which order.

Counts: `count` sources give exactly that many; weighted sources share the rest (`total` minus the counts,
or by default the largest mix that repeats none of them) by largest-remainder apportionment of their
weights. Records are drawn from each source in a seeded shuffle (a new shuffle per pass when `repeat`),
then all draws are interleaved by one seeded shuffle, so every stretch of the output mixes the tasks by
weight. Same recipe, inputs and seed: the same plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vlforge.pipelines.mix_recipe import MixError, MixRecipe
from vlforge.sources.annotations import ADAPTERS, Item, SourceError


@dataclass
class Plan:
    items: dict[str, list[Item]]  # every record each source has
    targets: dict[str, int]  # how many each source gives
    order: list[tuple[int, int]]  # (source index, item index) in output order


def scan_sources(recipe: MixRecipe) -> dict[str, list[Item]]:
    """Every source's Items; a missing or malformed source fails here, naming it."""
    items = {}
    for i, source in enumerate(recipe.sources):
        try:
            items[source.name] = ADAPTERS[source.source.adapter].scan(source.source, source.task)
        except (SourceError, OSError) as exc:
            raise MixError(f"sources.{i} ({source.name}, {source.source.adapter}): {exc}") from None
    return items


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


def draw(rng: np.random.Generator, have: int, need: int) -> list[int]:
    """`need` indices below `have`: a shuffle, then another for each further pass."""
    picks: list[int] = []
    while len(picks) < need:
        picks += rng.permutation(have)[: need - len(picks)].tolist()
    return picks


def make_plan(recipe: MixRecipe, items: dict[str, list[Item]]) -> Plan:
    want = targets(recipe, {name: len(found) for name, found in items.items()})
    order = []
    for i, source in enumerate(recipe.sources):
        rng = np.random.default_rng([recipe.seed, i])
        order += [(i, j) for j in draw(rng, len(items[source.name]), want[source.name])]
    shuffle = np.random.default_rng([recipe.seed, len(recipe.sources)]).permutation(len(order))
    return Plan(items, want, [order[k] for k in shuffle.tolist()])
