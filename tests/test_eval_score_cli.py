"""`vlforge score`: JSON summary, terminal table, per-sample parquet that DuckDB can query, and clear errors
(FILE:LINE for a bad line, the ids missing on either side, an --out that already holds results)."""

import json
import subprocess
import sys

import duckdb
import pytest

from vlforge.cli import main


def _jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def vqa_files(tmp_path):
    preds = _jsonl(tmp_path / "preds.jsonl", [{"id": 1, "prediction": "Two"}, {"id": "q2", "prediction": "the cat"},
                                             {"id": 3, "prediction": "no idea"}])
    refs = _jsonl(tmp_path / "vqav2.jsonl", [
        {"id": "1", "references": ["2"] * 9 + ["3"]},
        {"id": "q2", "references": ["cat"] * 2 + ["dog"] * 8},
        "",
        {"id": 3, "references": ["yes"] * 10},
    ])
    return preds, refs


def test_score_json(vqa_files, capsys):
    preds, refs = vqa_files
    assert main(["score", "--metric", "vqa", "--predictions", str(preds), "--references", str(refs), "--json"]) == 0
    # by hand: 1.0, 0.6 (2 of 10 said cat), 0.0
    assert json.loads(capsys.readouterr().out) == {"metric": "vqa", "score": pytest.approx(160 / 3), "count": 3}


def test_score_table_and_parquet(vqa_files, tmp_path, capsys):
    preds, refs = vqa_files
    out = tmp_path / "scored"
    assert main(["score", "--metric", "vqa", "--predictions", str(preds), "--references", str(refs),
                 "--out", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["benchmark", "metric", "count", "score"]
    assert table[1].split() == ["vqav2", "vqa", "3", "53.33"]
    summary = json.loads((out / "scores.json").read_text())
    assert summary["results"] == [{"benchmark": "vqav2", "metric": "vqa", "score": pytest.approx(160 / 3), "count": 3}]
    samples = str(out / "samples.parquet")
    failures = duckdb.sql(f"SELECT id, prediction, \"references\"[1] AS first, score FROM '{samples}' "
                          "WHERE score < 100 ORDER BY score").fetchall()
    assert failures == [("3", "no idea", "yes", 0.0), ("q2", "the cat", "cat", pytest.approx(60.0))]
    mean = duckdb.sql(f"SELECT avg(score) FROM '{samples}'").fetchall()[0][0]
    assert mean == pytest.approx(summary["results"][0]["score"])
    # a second run into the same directory would replace the first one's results: refused before any work
    assert main(["score", "--metric", "exact", "--predictions", str(preds), "--references", str(refs),
                 "--out", str(out)]) == 2
    assert "already holds" in capsys.readouterr().err
    assert json.loads((out / "scores.json").read_text())["results"][0]["metric"] == "vqa"
    assert main(["score", "--metric", "vqa", "--predictions", str(preds), "--references", str(refs),
                 "--out", str(preds)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_grounding_scores_boxes_and_counts_unparseable(tmp_path, capsys):
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": "a", "prediction": "<box>(150,100),(650,600)</box>"},
                                          {"id": "b", "prediction": "the dog"},
                                          {"id": "c", "prediction": "(300,100),(800,600)</box>"}])
    refs = _jsonl(tmp_path / "refcoco.jsonl", [{"id": k, "references": [[20, 10, 120, 60]], "image_size": [200, 100]}
                                               for k in "abc"])
    out = tmp_path / "out"
    assert main(["score", "--metric", "grounding", "--predictions", str(preds), "--references", str(refs),
                 "--json", "--out", str(out)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == {"metric": "grounding", "score": pytest.approx(100 / 3), "count": 3, "unparseable": 1}
    rows = duckdb.sql(f"SELECT id, pred_box, round(iou, 4), image_size FROM '{out / 'samples.parquet'}' ORDER BY id"
                      ).fetchall()
    assert rows == [("a", [30.0, 10.0, 130.0, 60.0], round(4500 / 5500, 4), [200, 100]),
                    ("b", None, 0.0, [200, 100]),
                    ("c", [60.0, 10.0, 160.0, 60.0], round(3000 / 7000, 4), [200, 100])]


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return captured.err


@pytest.mark.parametrize(("line", "message"), [
    ('{"id": 2, "prediction": "x"', "invalid JSON"),
    ('["id", 2]', "expected a JSON object, got list"),
    ('{"id": 2, "prediction": 5}', '"prediction" must be a string'),
    ('{"id": null, "prediction": "x"}', '"id" must be a string or an integer'),
    ('{"id": 1, "prediction": "again"}', "id '1' already appeared on line 1"),
])
def test_unreadable_prediction_names_file_and_line(tmp_path, capsys, line, message):
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": 1, "prediction": "x"}, line])
    refs = _jsonl(tmp_path / "r.jsonl", [{"id": 1, "references": ["x"]}, {"id": 2, "references": ["y"]}])
    err = _error(capsys, ["score", "--metric", "exact", "--predictions", str(preds), "--references", str(refs)])
    assert f"vlforge score: error: {preds}:2: {message}" in err


@pytest.mark.parametrize(("metric", "record", "message"), [
    ("exact", {"id": 1, "references": "x"}, '"references" must be a non-empty list of strings'),
    ("cider", {"id": 1, "references": []}, '"references" must be a non-empty list of strings'),
    ("grounding", {"id": 1, "references": [[5, 5, 1, 1]], "image_size": [10, 10]}, "y1 <= y2, got [[5, 5, 1, 1]]"),
    ("grounding", {"id": 1, "references": [[0, 0, 1, 1]]}, '"image_size" must be [width, height]'),
    ("grounding", {"id": 1, "references": [[0, 0, 1, 1]], "image_size": [10, 0]}, '"image_size" must be'),
])
def test_unreadable_reference_names_file_and_line(tmp_path, capsys, metric, record, message):
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": 1, "prediction": "x"}])
    refs = _jsonl(tmp_path / "r.jsonl", ["", record])
    err = _error(capsys, ["score", "--metric", metric, "--predictions", str(preds), "--references", str(refs)])
    assert f"vlforge score: error: {refs}:2: " in err
    assert message in err


def test_missing_ids_are_listed(tmp_path, capsys):
    preds = _jsonl(tmp_path / "p.jsonl", [{"id": i, "prediction": "x"} for i in (1, 2, 99)])
    refs = _jsonl(tmp_path / "r.jsonl", [{"id": i, "references": ["x"]} for i in range(1, 10)])
    err = _error(capsys, ["score", "--metric", "exact", "--predictions", str(preds), "--references", str(refs)])
    assert f"7 ids in {refs} have no prediction in {preds}: '3', '4', '5', '6', '7' and 2 more" in err
    assert f"1 ids in {preds} have no reference in {refs}: '99'" in err


def test_missing_file_and_empty_references(tmp_path, capsys):
    preds = _jsonl(tmp_path / "p.jsonl", [])
    err = _error(capsys, ["score", "--metric", "vqa", "--predictions", str(preds),
                          "--references", str(tmp_path / "nope.jsonl")])
    assert "no such file" in err
    refs = _jsonl(tmp_path / "r.jsonl", [""])
    assert "no references to score" in _error(capsys, ["score", "--metric", "vqa", "--predictions", str(preds),
                                                       "--references", str(refs)])


def test_installed_command(vqa_files):
    preds, refs = vqa_files
    run = subprocess.run([sys.executable, "-m", "vlforge.cli", "score", "--metric", "anls", "--predictions",
                          str(preds), "--references", str(refs), "--json"], capture_output=True, text=True, check=True)
    # ANLS by hand: "Two" vs "2": NL 1 -> 0; "the cat" vs "cat": 4 edits / 7 -> 0; "no idea" vs "yes": 0
    assert json.loads(run.stdout) == {"metric": "anls", "score": 0.0, "count": 3}
