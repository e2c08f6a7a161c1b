"""Issue 8, items 2 and 8: a rerun resumes only the run it continues (else it says what changed), and a
unit whose worker keeps dying is recorded, not retried forever."""

import argparse
import json
import os
import signal
from pathlib import Path

import pytest

from vlforge.pipelines.executor import MAX_ATTEMPTS, UNIT_FAILED, UnitFailure, run_units
from vlforge.pipelines.render import RenderOptions, give_up_unit, process_unit, render_plan, run_render, split_units
from vlforge.pipelines.synthdog import add_synthdog_parser
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
    parser = argparse.ArgumentParser(prog="vlforge")
    add_synthdog_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["synthdog", "--lang", "en", "--count", "2", "--unit-size", "1", "--size", "96",
                              "--out", str(out), *flags])
    return args.func(args)


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
    assert "skipped (already committed) 2" in capsys.readouterr().out


def test_a_unit_whose_worker_keeps_dying_is_given_up_with_a_reason(tmp_path):
    jsonl, out = text_input(tmp_path, 6), tmp_path / "out"
    options = RenderOptions("text", lines_per_unit=2)
    units = split_units(jsonl, options, out)

    def dies_on_the_second_unit(unit):  # what the kernel's OOM killer does to a worker
        if unit.id == "text-00001":
            os.kill(os.getpid(), signal.SIGKILL)
        return process_unit(unit)

    with pytest.raises(UnitFailure, match=rf"text-00001: failed {MAX_ATTEMPTS} times: WorkerCrashedError"):
        run_units(units, dies_on_the_second_unit, out, plan=render_plan(jsonl, options))
    assert lines_of(out) == [1, 2, 5, 6]

    report = run_units(units, dies_on_the_second_unit, out, plan=render_plan(jsonl, options), give_up=give_up_unit)
    assert report.skipped == ["text-00000", "text-00002"] and [s.unit for s in report.stats] == ["text-00001"]
    rows = sorted(read_manifests(out).to_pylist(), key=lambda r: r["line"])
    assert [(r["line"], r["status"], r["reason"]) for r in rows[2:4]] == [
        (3, "dropped", UNIT_FAILED), (4, "dropped", UNIT_FAILED)]
    assert rows[2]["error"].startswith("WorkerCrashedError") and rows[2]["error"].endswith(f"({MAX_ATTEMPTS} attempts)")
    again = run_units(units, dies_on_the_second_unit, out, plan=render_plan(jsonl, options), give_up=give_up_unit)
    assert again.stats == [] and len(again.skipped) == 3  # recorded once, never rerun
