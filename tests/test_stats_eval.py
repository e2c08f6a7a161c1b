"""`vlforge stats`, `sql` and `report` on evaluation outputs (`scores.json` + `samples.parquet`) written by the
real `vlforge score --out` and by `evaluate` + `write_results` (what `vlforge eval --out` runs) on rendered shards.
Expected numbers are computed here with pyarrow from samples.parquet, or by hand."""

import base64
import io
import json
from collections import defaultdict

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from stats_support import eval_dir, run_cli, stats_json
from test_report import Page


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """Two `vlforge score --out` runs: VQA answers (benchmark vqav2) and grounding boxes (benchmark refcoco)."""
    from vlforge.cli import main

    tmp = tmp_path_factory.mktemp("scored")
    vqa_preds = _jsonl(tmp / "vqa_preds.jsonl", [{"id": "a", "prediction": "Two"}, {"id": "b", "prediction": "cat"},
                                                 {"id": "c", "prediction": "no"}])
    vqa_refs = _jsonl(tmp / "vqav2.jsonl", [{"id": "a", "references": ["2"] * 10},
                                            {"id": "b", "references": ["cat"] * 2 + ["dog"] * 8},
                                            {"id": "c", "references": ["yes"] * 10}])
    box_preds = _jsonl(tmp / "box_preds.jsonl", [{"id": "g1", "prediction": "(0,0),(500,500)</box>"},
                                                 {"id": "g2", "prediction": "(0,0),(1000,1000)</box>"},
                                                 {"id": "g3", "prediction": "no box"}])
    size = {"image_size": [200, 100]}
    box_refs = _jsonl(tmp / "refcoco.jsonl", [{"id": "g1", "references": [[0, 0, 100, 50]], **size},
                                              {"id": "g2", "references": [[0, 0, 20, 20]], **size},
                                              {"id": "g3", "references": [[10, 10, 30, 30]], **size}])
    dirs = {"vqa": tmp / "vqa-out", "grounding": tmp / "box-out"}
    for metric, preds, refs in (("vqa", vqa_preds, vqa_refs), ("grounding", box_preds, box_refs)):
        assert main(["score", "--metric", metric, "--predictions", str(preds), "--references", str(refs),
                     "--out", str(dirs[metric]), "--json"]) == 0
    return dirs


def _expected(*dirs) -> dict:
    """(dir, benchmark) -> (metric, mean score, count, unreadable boxes), from samples.parquet with pyarrow."""
    found = defaultdict(list)
    for d in dirs:
        for row in pq.read_table(d / "samples.parquet").to_pylist():
            found[str(d), row["benchmark"]].append(row)
    return {key: (rows[0]["metric"], float(np.mean([r["score"] for r in rows])), len(rows),
                  sum(r.get("pred_box", 0) is None for r in rows)) for key, rows in found.items()}


def test_stats_metric_table_matches_samples_parquet(scored, capsys):
    tables = stats_json(capsys, scored["vqa"], scored["grounding"])
    assert list(tables) == ["evaluation"]
    got = {(r["dir"], r["benchmark"]): (r["metric"], r["score"], r["count"], r.get("unparseable") or 0)
           for r in tables["evaluation"]}
    expected = _expected(scored["vqa"], scored["grounding"])
    assert got.keys() == expected.keys()
    for key, (metric, score, count, unreadable) in expected.items():
        assert got[key] == (metric, pytest.approx(score), count, unreadable)
    # and by hand: VQA 100 (10 said 2), 60 (2 of 10 said cat), 0; boxes IoU 1, 0.002, unreadable
    assert got[str(scored["vqa"]), "vqav2"] == ("vqa", pytest.approx(160 / 3), 3, 0)
    assert got[str(scored["grounding"]), "refcoco"] == ("grounding", pytest.approx(100 / 3), 3, 1)
    # the JSON scores vlforge score wrote agree
    written = json.loads((scored["vqa"] / "scores.json").read_text())["results"][0]
    assert written["score"] == pytest.approx(got[str(scored["vqa"]), "vqav2"][1])


def test_stats_text_names_the_benchmark(scored, capsys):
    code, out, err = run_cli(capsys, "stats", str(scored["vqa"]))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "Evaluation: score (0-100) per benchmark"
    assert lines[1].split() == ["benchmark", "metric", "score", "count"]
    assert lines[3].split() == ["vqav2", "vqa", "53.33", "3"]


def test_sql_finds_the_failures(scored, capsys):
    code, out, err = run_cli(capsys, "sql", str(scored["grounding"]), str(scored["vqa"]),
                             "SELECT pipeline, id FROM samples WHERE score = 0 ORDER BY id")
    assert code == 0, err
    failures = sorted(r["id"] for d in scored.values() for r in pq.read_table(d / "samples.parquet").to_pylist()
                      if r["score"] == 0)
    assert failures == ["c", "g2", "g3"]
    rows = [line.split() for line in out.splitlines()[2:] if not line.startswith("(")]
    assert rows == [["eval", i] for i in failures]


def test_report_of_a_score_run_shows_text_and_says_why_no_image(scored, tmp_path, capsys):
    out = tmp_path / "r.html"
    code, _, err = run_cli(capsys, "report", str(scored["grounding"]), "--out", str(out))
    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    page = Page(text)
    assert page.sections == ["eval"]
    head, *rows = page.tables[0, "evaluation"]
    assert head == ["benchmark", "metric", "score", "count", "unparseable"] and rows == [["refcoco", "grounding",
                                                                                           "33.33", "3", "1"]]
    assert [(kind, reason, n) for _, kind, reason, n in page.grids] == [("worst", "refcoco", 0)]
    assert "recorded no shards (vlforge score), so no images" in text
    assert text.index("<dd>g2</dd>") < text.index("<dd>g1</dd>")  # worst first: g2, g3 scored 0, g1 100
    assert "<dd>[0, 0, 100, 50]</dd>" in text and "<dd>no box</dd>" in text


def _data_image(uri: str) -> np.ndarray:
    head, payload = uri.split(",", 1)
    assert head == "data:image/jpeg;base64"
    with Image.open(io.BytesIO(base64.b64decode(payload))) as im:
        return np.asarray(im.convert("RGB")).astype(int)


@pytest.mark.slow  # renders shards with Ray
def test_report_of_an_eval_run_draws_the_boxes_on_the_shard_images(ray_local, tmp_path, capsys):
    run = eval_dir(tmp_path / "eval")
    out = tmp_path / "r.html"
    code, _, err = run_cli(capsys, "report", str(run), "--out", str(out))
    assert code == 0, err
    page = Page(out.read_text(encoding="utf-8"))
    samples = pq.read_table(run / "samples.parquet").to_pylist()
    assert [(kind, n) for _, kind, _, n in page.grids] == [("worst", len(samples))]
    images = [_data_image(u) for u in page.urls]
    assert len(images) == len(samples) == 2
    for im in images:  # the predicted box is the whole image: a red frame on its border
        border = np.concatenate([im[1, :], im[-2, :], im[:, 1], im[:, -2]])
        red = (border[:, 0] > 150) & (border[:, 1] < 90) & (border[:, 2] < 90)
        assert red.mean() > 0.8
        green = (im[:, :, 1] > 120) & (im[:, :, 0] < 90) & (im[:, :, 2] < 90)
        assert green.sum() > 50  # the reference box


def test_unfinished_or_damaged_evaluations_are_named(scored, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "samples.parquet").write_bytes((scored["vqa"] / "samples.parquet").read_bytes())
    code, out, err = run_cli(capsys, "stats", str(unfinished))
    assert (code, out) == (2, "")
    assert err == (f"vlforge stats: error: {unfinished}: samples.parquet without scores.json: an evaluation that did "
                   "not finish (scores.json is written last); run it again into an empty --out\n")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "scores.json").write_text((scored["vqa"] / "scores.json").read_text())
    good = (scored["vqa"] / "samples.parquet").read_bytes()
    (damaged / "samples.parquet").write_bytes(good[:4] + bytes(len(good) - 8) + good[-4:])  # footer magic kept
    code, out, err = run_cli(capsys, "sql", str(damaged), "SELECT count(*) FROM samples")
    assert code == 2 and err.startswith(f"vlforge sql: error: {damaged / 'samples.parquet'}")
    assert err.endswith("\n") and err.count("\n") == 1
