"""`vlforge stats` on a real `vlforge mix` output: the task mix and estimated tokens, checked with pyarrow."""

from collections import Counter

import numpy as np
import pytest
from mix_support import mix_layouts, write_recipe
from stats_support import run_cli, stats_json

from vlforge.pipelines.mix.recipe import load_mix_recipe
from vlforge.pipelines.mix.run import build_mixture
from vlforge.shards.manifest import read_manifests


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, ray_local):
    root = tmp_path_factory.mktemp("stats-mix")
    recipe = load_mix_recipe(write_recipe(root / "mix.yaml", mix_layouts.recipe(mix_layouts.write_all(root / "in"))))
    build_mixture(recipe, root / "out")
    return root / "out"


@pytest.mark.slow  # a real mix over every public layout fixture
def test_task_mix_and_estimated_tokens(mixed, capsys):
    tables = stats_json(capsys, mixed)
    rows = read_manifests(mixed).to_pylist()
    kept = [r for r in rows if r["status"] == "kept"]
    samples = Counter((r["task"], r["source"]) for r in kept)
    tokens = Counter()
    for r in kept:
        tokens[r["task"], r["source"]] += r["est_tokens"]
    assert {(r["task"], r["source"]): r["samples"] for r in tables["tasks"]} == samples
    assert {(r["task"], r["source"]): r["est_tokens"] for r in tables["tasks"]} == tokens
    assert len({task for task, _ in samples}) >= 5  # the fixture mixes most of Qwen-VL's seven tasks
    assert {r["pipeline"] for r in tables["funnel"]} == {"mix"}
    read = Counter(r["source"] for r in rows)
    assert {r["source"]: r["read"] for r in tables["funnel"]} == read
    lengths = {(r["source"], r["status"]): r for r in tables["distributions"] if r["metric"] == "est_tokens"}
    for source in {r["source"] for r in kept}:
        values = [r["est_tokens"] for r in kept if r["source"] == source]
        row = lengths[source, "kept"]
        assert row["n"] == len(values)
        assert [row["p5"], row["p50"], row["p95"]] == pytest.approx(np.quantile(values, [0.05, 0.5, 0.95]), abs=1e-3)
    code, out, _ = run_cli(capsys, "stats", str(mixed), "--csv", "tasks")
    assert code == 0 and out.splitlines()[0] == "dir,task,source,samples,share_pct,est_tokens"
