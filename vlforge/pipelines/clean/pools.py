"""Ray actor pools of `vlforge clean`, for steps with `actors: N` (a model loaded once serves every unit)."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa

from vlforge.filters.base import Filter, FilterResult
from vlforge.pipelines.clean.recipe import PARAMS, CleanRecipe, Step, make_filter
from vlforge.pipelines.executor import wait_for_ray


class FilterActor:
    """Holds one operator (a CLIP model, say) so it loads once and serves every unit's batches."""

    def __init__(self, step: Step, thresholds: Mapping[str, float] | None) -> None:
        self.filter = make_filter(step, thresholds)

    def apply(self, batch: pa.Table) -> FilterResult:
        return self.filter.apply(batch)


class PooledFilter(Filter):
    """A step whose work happens in a pool of `FilterActor`s; units call it like any other filter."""

    def __init__(self, name: str, handles: list) -> None:
        self.name, self.handles = name, handles

    def apply(self, batch: pa.Table) -> FilterResult:
        import ray

        first_row = batch["row"][0].as_py() if batch.num_rows else 0
        return ray.get(self.handles[first_row % len(self.handles)].apply.remote(batch))


def actor_thresholds(recipe: CleanRecipe, step: Step) -> dict[str, float] | None:
    """One thresholds mapping for a pooled step, so a single pool serves every source."""
    if "thresholds" not in PARAMS[step.op].model_fields:
        return None
    base = step.params.get("thresholds", PARAMS[step.op].model_fields["thresholds"].default)
    mapping = dict(base) if isinstance(base, Mapping) else {source: float(base) for source in recipe.sources}
    for source, spec in recipe.sources.items():
        if "thresholds" in spec.filters.get(step.name, {}):
            mapping[source] = float(spec.filters[step.name]["thresholds"])
    return mapping


def start_pools(recipe: CleanRecipe, sources: set[str]) -> dict[str, list]:
    """An actor pool for each pooled step that some source of this run enables. Waits for Ray only when there is
    one, so without pools the driver goes on working while Ray starts."""
    pooled = [step for step in recipe.steps() if step.actors and any(
        s.name == step.name for source in sources for phase in ("before_download", "after_download")
        for s in recipe.source_steps(source, phase))]
    if not pooled:
        return {}
    wait_for_ray()
    import ray

    actor = ray.remote(num_cpus=1)(FilterActor)
    return {step.name: [actor.options(num_gpus=step.num_gpus).remote(step, actor_thresholds(recipe, step))
                        for _ in range(step.actors)] for step in pooled}


def stop_pools(pools: Mapping[str, list]) -> None:
    import ray

    for handles in pools.values():
        for handle in handles:
            ray.kill(handle)
