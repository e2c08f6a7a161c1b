"""`vlforge stats`: every number checked against pyarrow/numpy over the same manifest files."""

import csv
import io
import json
from collections import Counter

import numpy as np
import pyarrow.compute as pc
import pytest
from stats_support import (
    clean_like,
    manifest_table,
    metrics_rows,
    pipeline_outputs,
    run_cli,
    stats_json,
    train_dir,
)

from vlforge.shards.manifest import read_manifests


@pytest.fixture(scope="module")
def clean_out(tmp_path_factory):
    return clean_like(tmp_path_factory.mktemp("stats") / "clean")


@pytest.fixture(scope="module")
def pipelines(ray_local, tmp_path_factory):
    return pipeline_outputs(tmp_path_factory.getbasetemp() / "stats-pipelines")


def test_funnel_reasons_and_languages_match_pyarrow(clean_out, capsys):
    tables = stats_json(capsys, clean_out)
    table = manifest_table(clean_out)
    rows = table.to_pylist()
    read = Counter(r["source"] for r in rows)
    kept = Counter(r["source"] for r in rows if r["status"] == "kept")
    funnel = {r["source"]: r for r in tables["funnel"]}
    assert set(funnel) == set(read)
    for source, n in read.items():
        assert funnel[source]["pipeline"] == "clean"
        assert (funnel[source]["read"], funnel[source]["kept"], funnel[source]["dropped"]) == \
            (n, kept[source], n - kept[source])
        assert funnel[source]["retention_pct"] == pytest.approx(100 * kept[source] / n, abs=0.01)
    dropped = Counter((r["source"], r["stage"], r["reason"]) for r in rows if r["status"] == "dropped")
    assert {(r["source"], r["stage"], r["reason"]): r["dropped"] for r in tables["reasons"]} == dropped
    for r in tables["reasons"]:
        assert r["pct_of_read"] == pytest.approx(100 * r["dropped"] / read[r["source"]], abs=0.01)
    langs = Counter(r["lang"] or "?" for r in rows if r["status"] == "kept")
    assert {r["lang"]: r["kept"] for r in tables["languages"]} == langs
    assert sum(r["share_pct"] for r in tables["languages"]) == pytest.approx(100, abs=0.05)
    en_share = 100 * sum(1 for r in rows if r["status"] == "kept" and r["source"] == "laion" and r["lang"] == "en") \
        / sum(1 for r in rows if r["status"] == "kept" and r["source"] == "laion" and r["lang"])
    assert f"en {round(en_share, 1):g}%" in funnel["laion"]["languages"]


def _values(table, source: str, status: str, metric: str) -> np.ndarray:
    part = table.filter(pc.and_(pc.equal(table["source"], source), pc.equal(table["status"], status)))
    w = part["width"].to_numpy(zero_copy_only=False).astype(float)
    h = part["height"].to_numpy(zero_copy_only=False).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = {"aspect_ratio": np.where(np.minimum(w, h) > 0, np.maximum(w, h) / np.minimum(w, h), np.nan),
                  "shorter_side": np.where(np.minimum(w, h) > 0, np.minimum(w, h), np.nan),
                  "clip_score": part["clip_score"].to_numpy(zero_copy_only=False).astype(float),
                  "caption_chars": part["caption_chars"].to_numpy(zero_copy_only=False).astype(float)}[metric]
    return values[~np.isnan(values)]


def test_distributions_match_numpy_quantiles(clean_out, capsys):
    tables = stats_json(capsys, clean_out)
    table = manifest_table(clean_out)
    found = {(r["source"], r["status"], r["metric"]): r for r in tables["distributions"]}
    assert {m for _, _, m in found} == {"aspect_ratio", "shorter_side", "clip_score", "caption_chars"}
    assert len(found) == 2 * 2 * 4
    for (source, status, metric), row in found.items():
        values = _values(table, source, status, metric)
        assert row["n"] == len(values)
        expected = np.quantile(values, [0.05, 0.25, 0.5, 0.75, 0.95])
        got = [row[k] for k in ("p5", "p25", "p50", "p75", "p95")]
        assert got == pytest.approx(expected, abs=1e-3), (source, status, metric)
        assert row["mean"] == pytest.approx(values.mean(), abs=1e-3)


def test_text_and_csv_show_the_same_numbers(clean_out, capsys):
    tables = stats_json(capsys, clean_out)
    code, text, _ = run_cli(capsys, "stats", str(clean_out))
    assert code == 0
    lines = text.splitlines()
    header = lines.index("Funnel per source (read -> kept)")
    assert lines[header + 1].split()[:6] == ["pipeline", "source", "read", "kept", "dropped", "retention_pct"]
    for row in tables["funnel"]:  # one directory: no dir column
        line = next(x for x in lines[header + 3:] if x.split()[:2] == ["clean", row["source"]])
        assert line.split()[2:5] == [f"{row['read']:,}", f"{row['kept']:,}", f"{row['dropped']:,}"]
    code, out, _ = run_cli(capsys, "stats", str(clean_out), "--csv", "reasons")
    assert code == 0
    parsed = list(csv.DictReader(io.StringIO(out)))
    expected = [(r["reason"], r["dropped"]) for r in tables["reasons"]]
    assert [(r["reason"], int(r["dropped"])) for r in parsed] == expected


@pytest.mark.slow  # real render and synthdog runs (shared with test_report)
def test_render_and_synthdog_runs(pipelines, capsys):
    tables = stats_json(capsys, pipelines["render"], pipelines["synthdog"])
    render = read_manifests(pipelines["render"]).to_pylist()
    kept = Counter((r["task"], r["source"]) for r in render if r["status"] == "kept")
    assert {(r["task"], r["source"]): r["samples"] for r in tables["tasks"]} == kept
    assert sum(r["share_pct"] for r in tables["tasks"]) == pytest.approx(100, abs=0.05)
    bad = [r for r in render if r["status"] == "dropped"]
    assert len(bad) == 2
    assert {(r["reason"], r["dropped"]) for r in tables["reasons"]} == set(Counter(r["reason"] for r in bad).items())
    synth = read_manifests(pipelines["synthdog"]).to_pylist()
    pipelines_of = {r["dir"]: r["pipeline"] for r in tables["funnel"]}
    assert pipelines_of == {str(pipelines["render"]): "render", str(pipelines["synthdog"]): "synthdog"}
    ocr = {r["source"]: r for r in tables["ocr"]}
    for source in ("synthdog-en", "synthdog-zh"):
        mine = [r for r in synth if r["source"] == source and r["status"] == "kept"]
        lines, chars = sum(r["lines"] for r in mine), sum(r["chars"] for r in mine)
        assert (ocr[source]["images"], ocr[source]["lines"], ocr[source]["chars"]) == (len(mine), lines, chars)
        assert ocr[source]["chars_per_line"] == pytest.approx(chars / lines, abs=0.01)
        assert ocr[source]["langs"] == source[-2:]
        fonts = Counter(f for r in mine for f in r["fonts"])
        assert {r["font"]: r["images"] for r in tables["fonts"] if r["source"] == source} == fonts


def test_training_run_metrics(tmp_path, capsys):
    rows = metrics_rows()
    tables = stats_json(capsys, train_dir(tmp_path / "run"))
    [run] = tables["training"]
    train = [r for r in rows if "eval" not in r]
    evals = [r for r in rows if "eval" in r]
    assert (run["steps"], run["last_step"], run["evals"]) == (len(train), 20, len(evals))
    assert run["last_loss"] == pytest.approx(train[-1]["loss"])
    assert run["last_lr"] == pytest.approx(train[-1]["lr"])
    assert run["tokens_per_s"] == pytest.approx(np.mean([r["tokens_per_s"] for r in train]), abs=0.05)
    assert run["samples_per_s"] == pytest.approx(np.mean([r["samples_per_s"] for r in train]), abs=0.005)
    assert run["padding_pct"] == pytest.approx(100 * np.mean([r["padding"] for r in train]), abs=0.01)
    losses = {r["task"]: r for r in tables["task_loss"]}
    assert set(losses) == {"caption", "ocr"}
    for task, row in losses.items():
        assert (row["evals"], row["first_step"], row["last_step"]) == (len(evals), evals[0]["step"], evals[-1]["step"])
        assert row["first_loss"] == pytest.approx(evals[0]["eval"][task])
        assert row["last_loss"] == pytest.approx(evals[-1]["eval"][task])


def test_json_is_one_object_of_tables(clean_out, tmp_path, capsys):
    run = train_dir(tmp_path / "run")
    tables = stats_json(capsys, clean_out, run)
    assert {"funnel", "reasons", "languages", "distributions", "training", "task_loss"} <= set(tables)
    assert all(r["dir"] in (str(clean_out), str(run)) for t in tables.values() for r in t)
    assert json.loads(json.dumps(tables)) == tables
