"""Issue 8, items 2 and 8: a rerun resumes only the run it continues (else it says what changed), and a
unit whose worker keeps dying is recorded, not retried forever, and makes the command exit 2."""

import json
import os
import signal
from pathlib import Path

import pytest
from mix_support import write_recipe
from test_clean_support import ImageServer, jpeg, photo, write_laion
from test_clean_support import write_recipe as write_clean_recipe

from vlforge import cli
from vlforge.pipelines import render
from vlforge.pipelines.clean import run as clean_run
from vlforge.pipelines.executor import MAX_ATTEMPTS, UNIT_FAILED, UnitFailure, run_units
from vlforge.pipelines.mix import run as mix_run
from vlforge.pipelines.render import RenderOptions, process_unit, render_plan, run_render, split_units
from vlforge.shards.manifest import MANIFEST_DIR, read_manifests
from vlforge.shards.outdir import OutDirError

pytestmark = pytest.mark.usefixtures("ray_local")


def text_input(tmp_path: Path, lines: int) -> Path:
    jsonl = tmp_path / "text.jsonl"
    jsonl.write_text("".join(json.dumps({"text": f"line {i}"}) + "\n" for i in range(1, lines + 1)))
    return jsonl


def as_if_killed_after(out: Path, units: int) -> None:
    """Remove every unit from `units` on: what a run killed after committing that many leaves."""
    for manifest in sorted((out / MANIFEST_DIR).glob("*.parquet"))[units:]:
        unit = manifest.name.split(".")[0]
        manifest.unlink()
        for tar in out.glob(f"{unit}-*.tar"):
            tar.unlink()


def lines_of(out: Path) -> list[int]:
    return sorted(r["line"] for r in read_manifests(out).to_pylist())


@pytest.mark.parametrize(("first", "second"), [(50, 100), (100, 50)])
def test_rerun_with_other_lines_per_unit_is_refused_with_what_changed(tmp_path, first, second):
    jsonl, out = text_input(tmp_path, 500), tmp_path / "out"
    run_render([jsonl], out, RenderOptions("text", lines_per_unit=first))
    as_if_killed_after(out, 5 if first == 50 else 2)
    with pytest.raises(OutDirError, match=rf"changed: --lines-per-unit: {first} -> {second}\)"):
        run_render([jsonl], out, RenderOptions("text", lines_per_unit=second))
    report = run_render([jsonl], out, RenderOptions("text", lines_per_unit=first))
    assert len(report.skipped) == (5 if first == 50 else 2)
    assert lines_of(out) == list(range(1, 501))  # every line exactly once


def test_rerun_with_an_edited_input_or_other_shard_size_is_refused(tmp_path):
    jsonl, out = text_input(tmp_path, 20), tmp_path / "out"
    run_render([jsonl], out, RenderOptions("text", lines_per_unit=5))
    as_if_killed_after(out, 2)
    with pytest.raises(OutDirError, match=r"changed: --shard-samples: 1000 -> 3\)"):
        run_render([jsonl], out, RenderOptions("text", lines_per_unit=5, max_samples=3))
    original, stat = jsonl.read_bytes(), jsonl.stat()
    size = stat.st_size
    with jsonl.open("a") as f:
        f.write(json.dumps({"text": "line 21"}) + "\n")
    with pytest.raises(OutDirError, match=rf"changed: input {jsonl.resolve()}: {size} bytes, mtime_ns \d+ -> "
                                          rf"{jsonl.stat().st_size} bytes"):
        run_render([jsonl], out, RenderOptions("text", lines_per_unit=5))
    assert lines_of(out) == list(range(1, 11))  # the refused reruns changed nothing
    jsonl.write_bytes(original)
    os.utime(jsonl, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # a run stopped by a bad line may go on with --on-error skip: that option is no part of the plan
    run_render([jsonl], out, RenderOptions("text", lines_per_unit=5, on_error="skip"))
    assert lines_of(out) == list(range(1, 21))


def synthdog(out: Path, *flags: str) -> int:
    return cli.main(["synthdog", "--lang", "en", "--count", "2", "--unit-size", "1", "--size", "96",
                     "--out", str(out), *flags])


@pytest.mark.slow
def test_synthdog_rerun_with_other_seed_unit_size_or_count_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert synthdog(out) == 0
    capsys.readouterr()
    for flags, change in ((["--seed", "1"], "--seed: 0 -> 1"), (["--unit-size", "2"], "--unit-size: 1 -> 2"),
                          (["--count", "3"], "--count: 2 -> 3")):
        assert synthdog(out, *flags) == 2
        err = capsys.readouterr().err
        assert "holds a synthdog run of other inputs or options" in err and change in err, err
    assert synthdog(out) == 0
    assert "skipped (already committed) 2" in capsys.readouterr().err


def dies_on(unit_id: str, process=process_unit):
    """`process` in a worker that is killed on `unit_id`, what the kernel's OOM killer does to a worker."""
    def dying(unit):  # nested: Ray ships it by value
        if unit.id == unit_id:
            os.kill(os.getpid(), signal.SIGKILL)
        return process(unit)
    return dying


def test_a_unit_whose_worker_keeps_dying_fails_after_the_others_committed(tmp_path):
    jsonl, out = text_input(tmp_path, 6), tmp_path / "out"
    options = RenderOptions("text", lines_per_unit=2)
    with pytest.raises(UnitFailure, match=rf"text-00001: failed {MAX_ATTEMPTS} times: WorkerCrashedError") as info:
        run_units(split_units(jsonl, options, out), dies_on("text-00001"), out, plan=render_plan(jsonl, options))
    report = info.value.report
    assert list(report.failed) == ["text-00001"] and report.given_up == {}
    assert [s.unit for s in report.stats] == ["text-00000", "text-00002"]
    assert lines_of(out) == [1, 2, 5, 6]


def test_cli_gives_up_a_unit_whose_worker_keeps_dying_exits_2_with_the_summary_and_a_rerun_resumes(
        tmp_path, monkeypatch, capsys):
    jsonl, out = text_input(tmp_path, 6), tmp_path / "out"
    monkeypatch.setattr(render, "process_unit", dies_on("text-00001"))
    argv = ["render", "--task", "text", "--input", str(jsonl), "--out", str(out), "--lines-per-unit", "2"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "units run 3, skipped (already committed) 0" in err
    assert err.index("units run 3") < err.index("vlforge render: error:")  # what did run, then what did not
    assert "units failed 0 (not committed), given up 1 (rows dropped as unit_failed)" in err
    assert f"read 6, kept 4 (66.7%), dropped 2  ->  {out}" in err
    assert "         2  unit_failed" in err
    assert ("vlforge render: error: 1 work unit(s) given up (their rows dropped as unit_failed; a rerun does not "
            "retry them):\n  text-00001: WorkerCrashedError") in err
    rows = sorted(read_manifests(out).to_pylist(), key=lambda r: r["line"])
    assert [(r["line"], r["status"], r["reason"], r["stage"]) for r in rows[2:4]] == [
        (3, "dropped", UNIT_FAILED, "unit"), (4, "dropped", UNIT_FAILED, "unit")]
    assert rows[2]["error"].startswith("WorkerCrashedError") and rows[2]["error"].endswith(f"({MAX_ATTEMPTS} attempts)")

    assert cli.main(argv) == 0  # the given-up unit is committed: recorded once, never rerun
    err = capsys.readouterr().err
    assert "units run 0, skipped (already committed) 3" in err and "given up" not in err


def test_mix_gives_up_a_unit_whose_worker_keeps_dying_writes_its_report_and_exits_2(
        tmp_path, monkeypatch, capsys):
    (tmp_path / "images").mkdir()
    questions = tmp_path / "questions.json"
    questions.write_text(json.dumps({f"q{i}": {"imageId": str(i), "question": "Is it?", "answer": "yes"}
                                     for i in range(3)}), encoding="utf-8")
    recipe = write_recipe(tmp_path / "mix.yaml", {"name": "m", "samples_per_unit": 2, "sources": [
        {"name": "gqa", "task": "vqa", "weight": 1,
         "from": {"adapter": "gqa", "questions": str(questions), "images": str(tmp_path / "images")}}]})
    out = tmp_path / "out"
    monkeypatch.setattr(mix_run, "process_unit", dies_on("mix-00001", mix_run.process_unit))
    assert cli.main(["mix", "--recipe", str(recipe), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "given up 1 (rows dropped as unit_failed)" in err and "         1  unit_failed" in err
    assert "vlforge mix: error: 1 work unit(s) given up" in err and "mix-00001: WorkerCrashedError" in err
    (row,) = [r for r in read_manifests(out).to_pylist() if r["reason"] == UNIT_FAILED]
    assert (row["source"], row["task"], row["position"], row["stage"]) == ("gqa", "vqa", 2, "unit")
    mix = json.loads((out / "mix.json").read_text(encoding="utf-8"))  # the unit is committed: the mix is complete
    assert mix["sources"]["gqa"]["reasons"] == {"image_missing": 2, UNIT_FAILED: 1}

    assert cli.main(["mix", "--recipe", str(recipe), "--out", str(out)]) == 0  # nothing rerun
    assert "units run 0, skipped (already committed) 2" in capsys.readouterr().err


def test_clean_gives_up_a_unit_whose_worker_keeps_dying_still_writes_its_table_and_exits_2(
        tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    recipe = write_clean_recipe(tmp_path / "r.yaml", rows_per_unit=2, after_download=[{"op": "image"}],
                                before_download=[{"op": "caption", "min_words": 2, "min_chars": 5}])
    monkeypatch.setattr(clean_run, "process_unit", dies_on("clean-0000-0000000002", clean_run.process_unit))
    with ImageServer() as server:
        rows = [{"SAMPLE_ID": i, "URL": server.add(f"/{i}.jpg", jpeg(photo("astronaut", 96 + 8 * i, 96))),
                 "TEXT": f"a photograph of an astronaut number {i}"} for i in range(4)]
        dump = write_laion(tmp_path / "d.parquet", rows)
        argv = ["clean", "--recipe", str(recipe), "--input", str(dump), "--out", str(out)]
        assert cli.main(argv) == 2
        printed = capsys.readouterr()
        assert "given up 1 (rows dropped as unit_failed)" in printed.err
        assert "vlforge clean: error: 1 work unit(s) given up" in printed.err
        table = json.loads((out / "clean-summary.json").read_text())  # committed: dedup and the table ran
        assert table["web"] == {"read": 4, "kept": 2, "dropped": 2, "reasons": {UNIT_FAILED: 2}}
        assert "unit_failed" in printed.out  # the per-source table, on stdout as always
        assert cli.main(argv) == 0
        assert "units run 0, skipped (already committed) 2" in capsys.readouterr().err
