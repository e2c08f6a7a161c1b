"""The executor: typed units and results, the one end-of-run summary, and the driver working while Ray starts."""

import os
from pathlib import Path

import pytest

from vlforge.pipelines.executor import RunReport, Unit, UnitFailure, UnitStats, ray_session, run_tasks, run_units
from vlforge.shards.outdir import Plan, claim_out_dir


def test_summary_totals_units_and_orders_reasons_by_count() -> None:
    report = RunReport(stats=[UnitStats("a", 4, 1, 3, {"x": 1, "y": 2}), UnitStats("b", 4, 3, 1, {"y": 1})],
                       skipped=["c"], removed=[], elapsed_s=2.0)
    assert (report.read, report.kept, report.dropped) == (8, 4, 4)
    assert report.reasons() == {"y": 3, "x": 1}
    lines = report.summary("OUT").splitlines()
    assert lines[0] == "units run 2, skipped (already committed) 1, debris removed 0, 2.0 s"
    assert lines[1] == "read 8, kept 4 (50.0%), dropped 4  ->  OUT"
    assert [line.split() for line in lines[2:]] == [["3", "y"], ["1", "x"]]


def test_summary_of_a_run_with_nothing_to_do() -> None:
    assert RunReport(skipped=["a"]).summary("OUT").splitlines()[1] == "read 0, kept 0, dropped 0  ->  OUT"


def test_a_failure_carries_the_report_and_names_failed_and_given_up_units() -> None:
    report = RunReport(stats=[UnitStats("a", 2, 2), UnitStats("b", 3, 0, 3, {"unit_failed": 3})],
                       failed={"c": "ValueError: bad line\nTraceback ..."},
                       given_up={"b": "WorkerCrashedError (3 attempts)"})
    lines = report.summary("OUT").splitlines()
    assert lines[1] == "units failed 1 (not committed), given up 1 (rows dropped as unit_failed)"
    assert lines[2:] == ["read 5, kept 2 (40.0%), dropped 3  ->  OUT", "           3  unit_failed"]
    failure = UnitFailure(report, "OUT")
    assert failure.report is report and failure.out == "OUT"
    assert str(failure).splitlines() == [
        "1 work unit(s) failed (the rest committed; rerun to resume):", "  c: ValueError: bad line",
        "1 work unit(s) given up (their rows dropped as unit_failed; a rerun does not retry them):",
        "  b: WorkerCrashedError (3 attempts)"]


@pytest.mark.slow
def test_the_driver_plans_while_ray_starts_then_tasks_and_typed_units_run_on_ray(tmp_path: Path, capsys) -> None:
    def pid_of(n: int) -> tuple[int, int]:  # defined here: Ray ships it by value, tests/ is no package
        return n, os.getpid()

    def count_lines(unit: Unit[Path]) -> UnitStats:
        return UnitStats(unit.id, read=len(unit.payload.read_text().splitlines()))

    def returns_a_dict(unit: Unit[Path]) -> dict:
        return {"read": 1}

    plan = Plan(key="t", pipeline="t", units=r"u-\d")
    with claim_out_dir(tmp_path / "out", plan), ray_session(num_cpus=2) as session:
        assert session is not None and session.starting  # ray.init takes seconds; this line takes microseconds
        first: list[tuple[int, int]] = []
        run_tasks(pid_of, [(0,)], first.append)
        assert first == [(0, os.getpid())]  # ran in the driver while Ray was starting
        session.wait()
        later: list[tuple[int, int]] = []
        run_tasks(pid_of, [(1,), (2,)], later.append)
        assert sorted(n for n, _ in later) == [1, 2] and all(pid != os.getpid() for _, pid in later)
        err = capsys.readouterr().err.splitlines()
        assert "[pid_of] tasks 1/1" in err and "[pid_of] tasks 2/2" in err  # the last one always shown
    assert session.start_s > 0 and session.stop_s > 0
    (tmp_path / "a.txt").write_text("1\n2\n3\n")
    units = [Unit("u-1", tmp_path / "a.txt")]
    report = run_units(units, count_lines, tmp_path / "units", desc="t")
    assert report.stats == [UnitStats("u-1", read=3)]
    with pytest.raises(Exception, match="u-2: the unit function returned a dict, not UnitStats"):
        run_units([Unit("u-2", tmp_path / "a.txt")], returns_a_dict, tmp_path / "units2", desc="t")
