"""`vlforge synthdog` end to end: Ray units, same samples for any partition, resume, Donut export, CLI."""

from __future__ import annotations

import argparse
import json

import pyarrow.compute as pc
import pytest
import yaml

from vlforge.pipelines.synthdog import (
    Recipe,
    add_synthdog_parser,
    make_units,
    process_unit,
    synthesize_shards,
)
from vlforge.shards.manifest import manifest_path, read_manifests
from vlforge.shards.reader import iter_samples
from vlforge.shards.verify import verify_dir
from vlforge.synthdog.config import config_dict, load_config
from vlforge.synthdog.resources import prepare_resources
from vlforge.synthdog.sample import text_sequence


def _samples(out) -> dict[str, tuple[bytes, bytes]]:
    found: dict[str, tuple[bytes, bytes]] = {}
    for sample in iter_samples(str(out)):
        assert sample["__key__"] not in found, "duplicate sample"
        found[sample["__key__"]] = (sample["jpg"], sample["json"])
    return found


def test_same_samples_for_any_partition_and_resume_after_a_kill(ray_local, tmp_path):
    out = tmp_path / "ray"
    recipe = Recipe(lang=["en", "zh"], count=6, out=str(out), seed=5, unit_size=3)
    config = load_config({})
    report, _ = synthesize_shards(recipe, config)
    assert len(report.stats) == 4 and all(s["kept"] == 3 for s in report.stats)
    first = _samples(out)
    assert sorted(first) == [f"{lang}_{i:09d}" for lang in ("en", "zh") for i in range(6)]
    assert verify_dir(out).ok

    # One worker, in this process, with units of two: the same samples, byte for byte.
    spec, _ = prepare_resources(["en", "zh"], config)
    single = tmp_path / "single"
    payload = {"out": str(single), "seed": 5, "config": config_dict(config), "resources": spec}
    for unit in make_units(["en", "zh"], 6, 2, payload):
        process_unit(unit)
    assert _samples(single) == first

    # A run killed before one unit committed: its tar is there, its manifest is not, debris lies around.
    manifest_path(out, "synthdog-zh-00000003").unlink()
    (out / ".synthdog-zh-00000003-000000.tar.tmp").write_bytes(b"partial")
    again, _ = synthesize_shards(recipe, config)
    assert [s["unit"] for s in again.stats] == ["synthdog-zh-00000003"]
    assert len(again.skipped) == 3
    assert "synthdog-zh-00000003-000000.tar" in again.removed
    assert _samples(out) == first
    assert verify_dir(out).ok


def test_donut_export_and_dropped_samples(ray_local, tmp_path):
    out = tmp_path / "donut-run"
    recipe = Recipe(lang=["en", "zh"], count=5, out=str(out), seed=1, unit_size=5, format="donut")
    synthesize_shards(recipe, load_config({}))
    records = {s["__key__"]: json.loads(s["json"]) for s in iter_samples(str(out))}
    exported = {}
    for split in ("train", "validation", "test"):
        for line in (out / "donut" / split / "metadata.jsonl").read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            assert (out / "donut" / split / row["file_name"]).is_file()
            truth = json.loads(row["ground_truth"])
            exported[row["file_name"][: -len(".jpg")]] = truth["gt_parse"]["text_sequence"]
    assert exported.keys() == records.keys()
    for key, record in records.items():
        texts = [line["text"] for line in record["lines"]]
        assert exported[key] == text_sequence(texts, record["lang"])
        if record["lang"] == "en":
            assert exported[key] == " ".join(texts)
        else:
            assert exported[key].replace(" ", "") == "".join(texts).replace(" ", "")

    # A layout with no room for text: every sample becomes a dropped manifest row, none is lost.
    empty = load_config({"document": {"content": {"layout": {"min_text_px": 4000}}}})
    spec, _ = prepare_resources(["en"], empty)
    payload = {"out": str(tmp_path / "empty"), "seed": 0, "config": config_dict(empty), "resources": spec}
    stats = process_unit(make_units(["en"], 3, 3, payload)[0])
    assert stats == {**stats, "read": 3, "kept": 0, "dropped": 3}
    manifest = read_manifests(tmp_path / "empty")
    assert manifest.num_rows == 3
    assert pc.all(pc.equal(manifest["status"], "dropped")).as_py()
    assert all(r.startswith("no_text") for r in manifest["reason"].to_pylist())


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="vlforge")
    add_synthdog_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_refuses_bad_flags_and_recipes_before_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        _cli(["synthdog", "--out", str(tmp_path), "--size", "huge"])
    assert "'variable'" in capsys.readouterr().err

    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump({"count": 3, "colour": "red", "synthdog": {"canvas": {"size": 5}}}))
    assert _cli(["synthdog", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "colour" in capsys.readouterr().err

    recipe.write_text(yaml.safe_dump({"count": 3, "synthdog": {"canvas": {"size": 5}}}))
    assert _cli(["synthdog", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "synthdog.canvas.size" in capsys.readouterr().err

    assert _cli(["synthdog", "--count", "1", "--lang", "en,fr", "--out", str(tmp_path / "o")]) == 2
    assert "lang" in capsys.readouterr().err
    assert _cli(["synthdog", "--count", "1"]) == 2
    assert "--out" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_output_directory_holds_one_run(ray_local, tmp_path, capsys):
    out = tmp_path / "run"
    assert _cli(["synthdog", "--lang", "en", "--count", "2", "--unit-size", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "en" in printed and "kept" in printed
    assert _cli(["synthdog", "--lang", "en", "--count", "2", "--seed", "9", "--out", str(out)]) == 2
    assert "different seed" in capsys.readouterr().err
