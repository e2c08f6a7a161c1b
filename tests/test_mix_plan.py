"""Mix planning without Ray: counts by weight or exact count, seeded interleaving, errors before any work."""

import math
import pickle
from collections import Counter

import pytest
from mix_support import mix_layouts, write_recipe

from vlforge.pipelines.mix.images import EvalSet, eval_hashes, prepare
from vlforge.pipelines.mix.plan import apportion, make_plan, scan_sources
from vlforge.pipelines.mix.recipe import MixError, load_mix_recipe
from vlforge.pipelines.mix.run import make_units


def _plan(recipe, folder):
    folder.mkdir(exist_ok=True)
    return make_plan(recipe, scan_sources(recipe, folder))


def _text_recipe(tmp_path, sizes: dict[str, int], weights: dict, **top) -> object:
    sources = []
    for name, size in sizes.items():
        path = tmp_path / f"{name}.txt"
        path.write_text("".join(f"{name} line {i}\n" for i in range(size)))
        spec = weights[name]
        sources.append({"name": name, "task": "text", **spec, "from": {"adapter": "text", "paths": [str(path)]}})
    return load_mix_recipe(write_recipe(tmp_path / "mix.yaml", {"name": "t", "sources": sources, **top}))


def test_apportion_by_largest_remainder():
    assert apportion(10, [1, 1, 1]) == [4, 3, 3]
    assert apportion(7, [4, 2, 1]) == [4, 2, 1]
    assert apportion(5, [1, 3]) == [1, 4]  # 1.25 / 3.75: the larger remainder gets the spare one
    assert apportion(0, [2, 5]) == [0, 0]


def test_default_total_is_the_largest_mix_that_repeats_no_weighted_source(tmp_path):
    recipe = _text_recipe(tmp_path, {"a": 100, "b": 30, "c": 5},
                          {"a": {"weight": 2}, "b": {"weight": 1}, "c": {"count": 5}})
    plan = _plan(recipe, tmp_path / "plan")
    # b binds: 30 / (1/3) = 90 weighted samples -> a 60, b 30; c exactly 5
    assert plan.targets == {"c": 5, "a": 60, "b": 30}
    assert Counter(i for i, _ in plan.order()) == {0: 60, 1: 30, 2: 5}
    drawn = [j for i, j in plan.order() if i == 0]
    assert len(set(drawn)) == 60  # without repeats


def test_repeat_draws_every_record_before_any_twice(tmp_path):
    recipe = _text_recipe(tmp_path, {"a": 3}, {"a": {"weight": 1, "repeat": True}}, total=7)
    plan = _plan(recipe, tmp_path / "plan")
    drawn = [j for _, j in plan.order()]
    assert sorted(Counter(drawn).values()) == [2, 2, 3]


def test_too_few_records_is_an_error_naming_the_source(tmp_path):
    recipe = _text_recipe(tmp_path, {"a": 3, "b": 3}, {"a": {"count": 5}, "b": {"weight": 1}})
    with pytest.raises(MixError, match=r"sources.0 \(a\): the mix needs 5 records but it has 3"):
        _plan(recipe, tmp_path / "plan")
    recipe = _text_recipe(tmp_path, {"a": 3}, {"a": {"count": 3}}, total=2)
    with pytest.raises(MixError, match="total: 2 is less than"):
        _plan(recipe, tmp_path / "plan")


def test_same_recipe_and_seed_same_order_other_seed_other_order(tmp_path):
    recipe = _text_recipe(tmp_path, {"a": 50, "b": 50}, {"a": {"weight": 1}, "b": {"weight": 1}})
    first = list(_plan(recipe, tmp_path / "plan").order())
    assert list(_plan(recipe, tmp_path / "plan").order()) == first
    other = recipe.model_copy(update={"seed": 1})
    assert list(_plan(other, tmp_path / "plan").order()) != first


def test_every_stretch_of_the_output_mixes_tasks_by_weight(tmp_path):
    """Realised shares in the first tenth of the output are within 4 sigma of the weights (hypergeometric)."""
    recipe = _text_recipe(tmp_path, {"a": 6000, "b": 3000, "c": 1000},
                          {"a": {"weight": 6}, "b": {"weight": 3}, "c": {"weight": 1}})
    plan = _plan(recipe, tmp_path / "plan")
    assert len(list(plan.order())) == 10_000
    window = list(plan.order())[:1000]
    counts = Counter(i for i, _ in window)
    for index, share in enumerate((0.6, 0.3, 0.1)):
        sigma = math.sqrt(1000 * share * (1 - share))
        assert abs(counts[index] - 1000 * share) < 4 * sigma, (index, counts)
    assert counts[0] != 600 or counts[1] != 300  # shuffled, not a fixed round robin


def test_a_missing_source_fails_before_any_work(tmp_path):
    recipe_path = write_recipe(tmp_path / "mix.yaml", {"name": "t", "sources": [
        {"name": "coco", "task": "caption", "weight": 1,
         "from": {"adapter": "coco_captions", "annotations": str(tmp_path / "nope.json"), "images": str(tmp_path)}}]})
    with pytest.raises(MixError, match=r"sources.0 \(coco, coco_captions\): annotations: no such file"):
        scan_sources(load_mix_recipe(recipe_path), tmp_path)


def test_units_carry_counts_not_records_or_evaluation_hashes(tmp_path):
    """A unit's payload stays a few hundred bytes however many records and evaluation images there are;
    the evaluation hashes are answered from the plan folder."""
    evals = tmp_path / "eval"
    evals.mkdir()
    for i in range(40):
        (evals / f"{i}.jpg").write_bytes(mix_layouts.photo(i, (64, 48)))
    recipe = _text_recipe(tmp_path, {"a": 6000, "b": 2000}, {"a": {"weight": 3}, "b": {"weight": 1}},
                          samples_per_unit=1000, exclude_eval=[str(evals)])
    folder = tmp_path / "plan"
    plan = _plan(recipe, folder)
    eval_hashes(recipe.exclude_eval, recipe.phash, folder)
    units = make_units(recipe, plan, tmp_path / "out", folder)
    assert len(units) == 8
    assert max(len(pickle.dumps(u.payload)) for u in units) < 1500
    in_eval = EvalSet(folder)
    assert prepare(mix_layouts.photo(7, (64, 48)), None, 95, True) in in_eval
    assert prepare(mix_layouts.photo(7, (128, 96)), None, 95, True) in in_eval  # resized: the same pHash
    assert prepare(mix_layouts.photo(77, (64, 48)), None, 95, True) not in in_eval


def test_the_order_is_a_function_of_counts_each_unit_computes_its_own_stretch(tmp_path):
    """Units recompute their entries from counts: the concatenation is every draw exactly once per pass."""
    recipe = _text_recipe(tmp_path, {"a": 700, "b": 300}, {"a": {"weight": 7}, "b": {"weight": 3}},
                          samples_per_unit=64)
    plan = _plan(recipe, tmp_path / "plan")
    order = list(plan.order())
    assert sorted(order) == [(0, j) for j in range(700)] + [(1, j) for j in range(300)]
    assert plan.counts.shape == (16, 2) and plan.counts.sum(axis=0).tolist() == [700, 300]
