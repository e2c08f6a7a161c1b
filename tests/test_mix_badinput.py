"""`vlforge mix` on hostile or unusable sources: every problem is a manifest row or a clear error, never a crash."""

import json

import pytest
from mix_support import mix_layouts, write_recipe

from vlforge.cli import main as cli
from vlforge.pipelines.mix.recipe import load_mix_recipe
from vlforge.pipelines.mix.run import build_mixture
from vlforge.shards.manifest import read_manifests
from vlforge.sources.annotations import SourceError, jsonl, text
from vlforge.sources.annotations.base import LINE_TOO_LONG, json_lines, load_json

DEEP = "[" * 200_000 + "]" * 200_000


def _gqa(root, image_ids):
    (root / "images").mkdir(parents=True)
    questions = root / "questions.json"
    questions.write_text(json.dumps({f"q{i}": {"imageId": image, "question": "Is it?", "answer": "yes"}
                                     for i, image in enumerate(image_ids)}), encoding="utf-8")
    return {"adapter": "gqa", "questions": str(questions), "images": str(root / "images")}


def test_a_mix_that_keeps_no_sample_finishes_and_reports_the_drops(tmp_path, ray_local, capsys):
    data = {"name": "empty", "samples_per_unit": 2,
            "sources": [{"name": "gqa", "task": "vqa", "weight": 1, "from": _gqa(tmp_path, ["1", "2", "3"])}]}
    path = write_recipe(tmp_path / "mix.yaml", data)
    assert cli(["mix", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "mix.json").read_text(encoding="utf-8"))
    assert summary["sources"]["gqa"] == {"task": "vqa", "planned": 3, "kept": 0, "dropped": 3,
                                         "reasons": {"image_missing": 3}}
    assert summary["tasks"] == {"vqa": 0}
    assert summary["est_tokens"] == {}
    assert "image_missing=3" in capsys.readouterr().out
    rerun = build_mixture(load_mix_recipe(path), tmp_path / "out")  # finds every unit done, no crash
    assert rerun.report.stats == [] and rerun.summary["sources"] == summary["sources"]


def test_units_with_and_without_kept_samples_summarize_together(tmp_path, ray_local):
    fx = mix_layouts.write_all(tmp_path / "fx")
    image = fx["gqa"]["images"] / "2354786.jpg"
    gqa = _gqa(tmp_path / "missing", ["a", "b"])
    (tmp_path / "missing" / "images" / "ok.jpg").write_bytes(image.read_bytes())
    data = {"name": "some", "samples_per_unit": 1, "seed": 3,
            "sources": [{"name": "gone", "task": "vqa", "count": 2, "from": gqa},
                        {"name": "here", "task": "vqa", "count": 1,
                         "from": _gqa(tmp_path / "here", ["ok"]) | {"images": str(tmp_path / "missing/images")}}]}
    result = build_mixture(load_mix_recipe(write_recipe(tmp_path / "mix.yaml", data)), tmp_path / "out")
    assert len(read_manifests(tmp_path / "out")) == 3
    assert result.summary["sources"]["gone"]["dropped"] == 2
    assert result.summary["sources"]["here"]["kept"] == 1
    assert result.summary["est_tokens"]["vqa"]["samples"] == 1


def test_deep_json_is_an_error_naming_the_file_and_line(tmp_path, capsys):
    lines = tmp_path / "deep.jsonl"
    lines.write_text('{"text": "fine"}\n' + DEEP + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=rf"^{lines}:2: line is not valid JSON \(nested too deeply\)$"):
        list(json_lines(lines))
    document = tmp_path / "deep.json"
    document.write_text(DEEP, encoding="utf-8")
    with pytest.raises(SourceError, match=rf"^questions: {document} is not valid JSON \(nested too deeply\)$"):
        load_json(document, "questions")
    data = {"name": "deep", "sources": [{"name": "t", "task": "text", "weight": 1,
                                         "from": {"adapter": "text", "paths": [str(lines)]}}]}
    path = write_recipe(tmp_path / "mix.yaml", data)
    assert cli(["mix", "--recipe", str(path), "--out", str(tmp_path / "out")]) == 2
    assert f"sources.0 (t, text): {lines}:2: line is not valid JSON (nested too deeply)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_json_lines_skips_an_over_long_line_unread_and_reads_on(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "short"}\n{"text": "' + "x" * 100 + '"}\n\n{"text": "after"}\n', encoding="utf-8")
    assert list(json_lines(path, max_bytes=50)) == [(1, {"text": "short"}), (2, LINE_TOO_LONG), (4, {"text": "after"})]


def test_an_over_long_jsonl_line_is_a_dropped_row_of_the_mix(tmp_path, ray_local):
    fx = mix_layouts.write_all(tmp_path / "fx")
    chat = fx["chat"].read_text(encoding="utf-8")
    huge = json.dumps({"image": "a.jpg", "caption": "x" * (5 << 20)})  # over the 4 MiB line cap
    fx["chat"].write_text(chat + huge + "\n", encoding="utf-8")
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "' + "y" * (5 << 20) + '"}\n{"text": "kept"}\n', encoding="utf-8")
    items = list(jsonl.scan(jsonl.Options(adapter="jsonl", path=fx["chat"]), "chat"))
    assert [(i.reject, i.record) for i in items[1:]] == [(LINE_TOO_LONG, {})]
    data = {"name": "long", "sources": [
        {"name": "chat", "task": "chat", "count": 2, "from": {"adapter": "jsonl", "path": str(fx["chat"])}},
        {"name": "corpus", "task": "text", "count": 2, "from": {"adapter": "text", "paths": [str(corpus)]}}]}
    build_mixture(load_mix_recipe(write_recipe(tmp_path / "mix.yaml", data)), tmp_path / "out")
    rows = sorted((r["source"], r["status"], r["reason"]) for r in read_manifests(tmp_path / "out").to_pylist())
    assert rows == [("chat", "dropped", "line_too_long"), ("chat", "kept", None),
                    ("corpus", "dropped", "line_too_long"), ("corpus", "kept", None)]
    assert [i.record for i in text.scan(text.Options(adapter="text", paths=[corpus]), "text")] == [{}, {"text": "kept"}]


def test_over_long_plain_text_lines_and_files_are_dropped_unread(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(b"first\r\n" + b"z" * (5 << 20) + b"\n\nlast\n")
    items = list(text.scan(text.Options(adapter="text", paths=[corpus]), "text"))
    assert [(i.uid, i.record, i.reject) for i in items] == [
        ("corpus:1", {"text": "first"}, None), ("corpus:2", {}, LINE_TOO_LONG), ("corpus:4", {"text": "last"}, None)]
    [whole] = text.scan(text.Options(adapter="text", paths=[corpus], per="file"), "text")
    assert (whole.record, whole.reject) == ({}, LINE_TOO_LONG)


def test_image_paths_outside_their_source_folders_are_dropped_unless_allowed(tmp_path, ray_local):
    fx = mix_layouts.write_all(tmp_path / "fx")
    photo = mix_layouts.photo(7, (64, 48))
    (tmp_path / "outside.jpg").write_bytes(photo)
    (tmp_path / "fx" / "chat" / "images" / "link.jpg").symlink_to(tmp_path / "outside.jpg")
    lines = [{"image": str(tmp_path / "outside.jpg"), "caption": "absolute"},
             {"image": "../../outside.jpg", "caption": "climbs out"},
             {"image": "images/link.jpg", "caption": "a link out"},
             {"image": "images/a.jpg", "caption": "inside"},
             {"image": "images/a.jpg\x00", "caption": "a NUL in the name, which no file has"}]
    captions = fx["chat"].parent / "captions.jsonl"
    captions.write_text("".join(json.dumps(r) + "\n" for r in lines), encoding="utf-8")
    gqa = _gqa(tmp_path / "gqa", ["../../outside", "/etc/passwd", "ok"])
    (tmp_path / "gqa" / "images" / "ok.jpg").write_bytes(photo)
    data = {"name": "confined", "sources": [
        {"name": "captions", "task": "caption", "count": 5, "from": {"adapter": "jsonl", "path": str(captions)}},
        {"name": "gqa", "task": "vqa", "count": 3, "from": gqa}]}
    path = write_recipe(tmp_path / "mix.yaml", data)
    build_mixture(load_mix_recipe(path), tmp_path / "out")
    rows = {(r["source"], r["uid"]): (r["status"], r["reason"]) for r in read_manifests(tmp_path / "out").to_pylist()}
    outside = ("dropped", "image_outside_root")
    assert rows == {("captions", "captions:1"): outside, ("captions", "captions:2"): outside,
                    ("captions", "captions:3"): outside, ("captions", "captions:4"): ("kept", None),
                    ("captions", "captions:5"): ("dropped", "image_missing"),
                    ("gqa", "gqa:q0"): outside, ("gqa", "gqa:q1"): outside, ("gqa", "gqa:q2"): ("kept", None)}
    assert cli(["mix", "--recipe", str(path), "--out", str(tmp_path / "allowed"), "--allow-outside-paths"]) == 0
    allowed = json.loads((tmp_path / "allowed" / "mix.json").read_text(encoding="utf-8"))
    assert allowed["recipe"]["allow_outside_paths"] is True
    assert allowed["sources"]["captions"]["kept"] == 4
    assert allowed["sources"]["captions"]["reasons"] == {"image_missing": 1}  # the NUL name
    assert allowed["sources"]["gqa"]["reasons"] == {"image_missing": 1}  # /etc/passwd.jpg: no such file

