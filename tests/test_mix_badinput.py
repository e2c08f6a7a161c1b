"""`vlforge mix` on hostile or unusable sources: every problem is a manifest row or a clear error, never a crash."""

import json

from mix_support import mix_layouts, write_recipe

from vlforge.cli import main as cli
from vlforge.pipelines.mix_recipe import load_mix_recipe
from vlforge.pipelines.mix_run import build_mixture
from vlforge.shards.manifest import read_manifests


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
