"""`vlforge synthdog` end to end: Ray units, same samples for any partition, resume, Donut export, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from test_synthdog_support import generate_here

from vlforge.cli import main
from vlforge.pipelines.synthdog import Recipe, synthesize_shards
from vlforge.shards.manifest import manifest_path, read_manifests
from vlforge.shards.reader import iter_samples
from vlforge.shards.verify import verify_dir
from vlforge.synthdog.config import load_config


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
    assert len(report.stats) == 4 and all(s.kept == 3 for s in report.stats)
    first = _samples(out)
    assert sorted(first) == [f"{lang}_{i:09d}" for lang in ("en", "zh") for i in range(6)]
    assert verify_dir(out).ok

    # One worker, in this process, with units of two: the same samples, byte for byte.
    generate_here(tmp_path / "single", ["en", "zh"], 6, 2, 5, config)
    assert _samples(tmp_path / "single") == first

    # A run killed before one unit committed: its tar is there, its manifest is not, debris lies around.
    manifest_path(out, "synthdog-zh-00000003").unlink()
    (out / ".synthdog-zh-00000003-000000.tar.tmp").write_bytes(b"partial")
    again, _ = synthesize_shards(recipe, config)
    assert [s.unit for s in again.stats] == ["synthdog-zh-00000003"]
    assert len(again.skipped) == 3
    assert "synthdog-zh-00000003-000000.tar" in again.removed
    assert _samples(out) == first
    assert verify_dir(out).ok


def _donut_label(texts: list[str], lang: str) -> str:
    """The label rule, written out: English lines joined by a space, Chinese lines joined directly
    except between two ASCII characters (a Latin word or number across the line break)."""
    label = texts[0]
    for text in texts[1:]:
        ascii_join = label[-1].isascii() and text[0].isascii()
        label += (" " if lang == "en" or ascii_join else "") + text
    return label


def test_donut_export_loads_as_donut_reads_it(ray_local, tmp_path, monkeypatch):
    """Donut's DonutDataset reads `load_dataset(DIR, split=...)` rows and json-decodes `ground_truth`
    into {"gt_parse": {"text_sequence": ...}}; splits without samples must not exist."""
    from datasets import load_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    out = tmp_path / "donut-run"
    recipe = Recipe(lang=["en", "zh"], count=5, out=str(out), seed=1, unit_size=5, format="donut")
    synthesize_shards(recipe, load_config({}))
    records = {s["__key__"]: json.loads(s["json"]) for s in iter_samples(str(out))}
    exported = {}
    splits = load_dataset(str(out / "donut"), cache_dir=str(tmp_path / "hf-cache"))
    assert set(splits) <= {"train", "validation", "test"} and "train" in splits
    for rows in splits.values():
        assert rows.num_rows > 0
        for row in rows:
            truth = json.loads(row["ground_truth"])
            assert list(truth) == ["gt_parse"] and list(truth["gt_parse"]) == ["text_sequence"]
            assert row["image"].size == (448, 448)
            exported[Path(row["image"].filename).stem] = truth["gt_parse"]["text_sequence"]
    assert exported.keys() == records.keys()
    for key, record in records.items():
        assert exported[key] == _donut_label([line["text"] for line in record["lines"]], record["lang"])


def test_samples_without_text_are_dropped_rows(tmp_path):
    """A layout with no room for text: every sample becomes a dropped manifest row, none is lost."""
    empty = load_config({"document": {"content": {"layout": {"min_text_px": 4000}}}})
    [stats] = generate_here(tmp_path / "empty", ["en"], 3, 3, 0, empty)
    assert (stats.read, stats.kept, stats.dropped, stats.reasons) == (3, 0, 3, {"no_text": 3})
    manifest = read_manifests(tmp_path / "empty")
    assert manifest.num_rows == 3
    assert pc.all(pc.equal(manifest["status"], "dropped")).as_py()
    assert all(r.startswith("no_text") for r in manifest["reason"].to_pylist())


def test_cli_refuses_bad_flags_and_recipes_before_work(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["synthdog", "--out", str(tmp_path), "--size", "huge"])
    assert "'variable'" in capsys.readouterr().err

    recipe = tmp_path / "bad.yaml"
    recipe.write_text(yaml.safe_dump({"count": 3, "colour": "red", "synthdog": {"canvas": {"size": 5}}}))
    assert main(["synthdog", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "colour" in capsys.readouterr().err

    recipe.write_text(yaml.safe_dump({"count": 3, "synthdog": {"canvas": {"size": 5}}}))
    assert main(["synthdog", "--recipe", str(recipe), "--out", str(tmp_path / "o")]) == 2
    assert "synthdog.canvas.size" in capsys.readouterr().err

    assert main(["synthdog", "--count", "1", "--lang", "en,fr", "--out", str(tmp_path / "o")]) == 2
    assert "lang" in capsys.readouterr().err
    assert main(["synthdog", "--count", "1"]) == 2
    assert "--out" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_text(" \n", encoding="utf-8")
    assert main(["synthdog", "--lang", "en", "--count", "1", "--corpus", f"en={empty}", "--out",
                 str(tmp_path / "o")]) == 2
    assert f"no usable en corpus (corpus {empty}: no text)" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_an_output_directory_holds_one_run(ray_local, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["synthdog", "--lang", "en", "--count", "2", "--unit-size", "2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "en" in printed and "kept" in printed
    assert main(["synthdog", "--lang", "en", "--count", "2", "--seed", "9", "--out", str(out)]) == 2
    assert "holds a synthdog run of other inputs or options (changed: --seed: 0 -> 9" in capsys.readouterr().err
