"""The executor: typed units and results, the one end-of-run summary, the driver working while Ray starts, and
executor processes (forked workers, no Ray)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from processes import running

from vlforge.pipelines.executor import MAX_ATTEMPTS, RunReport, Unit, UnitFailure, UnitStats, run_units


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


DRIVER_WHILE_RAY_STARTS = """
import json, os, sys
from pathlib import Path
from vlforge.pipelines.executor import executor_session, run_tasks
from vlforge.shards.outdir import Plan, claim_out_dir


def pid_of(n):
    return n, os.getpid()


with claim_out_dir(Path(sys.argv[1]), Plan(key="t", pipeline="t", units=r"u-\\d")), \\
        executor_session(num_cpus=2) as session:
    starting = session is not None and session.starting  # ray.init takes seconds; this line microseconds
    first, later = [], []
    run_tasks(pid_of, [(0,)], first.append)
    session.wait()
    import ray._private.worker
    daemons = sorted(ray._private.worker._global_node.all_processes)
    run_tasks(pid_of, [(1,), (2,)], later.append)
from ray._private.node import Node
restored = [Node.start_monitor.__qualname__, Node.start_api_server.__qualname__]
print(json.dumps({"starting": starting, "driver": os.getpid(), "first": first, "later": later,
                  "start_s": session.start_s, "stop_s": session.stop_s, "daemons": daemons, "restored": restored}))
"""


@pytest.mark.slow
def test_the_driver_plans_while_ray_starts_then_tasks_run_on_ray(tmp_path: Path) -> None:
    """In a fresh process (the test session's own Ray would be joined instead): the first call runs in the
    driver while Ray boots, later ones on Ray workers, each with a progress line; a local Ray runs no
    autoscaler monitor and no API server, and Ray's own starters are back once it is up."""
    done = subprocess.run([sys.executable, "-c", DRIVER_WHILE_RAY_STARTS, str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["starting"] and result["first"] == [[0, result["driver"]]]
    assert sorted(n for n, _ in result["later"]) == [1, 2]
    assert all(pid != result["driver"] for _, pid in result["later"])
    assert result["start_s"] > 0 and result["stop_s"] > 0
    # no "monitor" (Ray starts it whatever is installed) and no "dashboard" (the API server)
    assert result["daemons"] == ["gcs_server", "log_monitor", "raylet"]
    assert result["restored"] == ["Node.start_monitor", "Node.start_api_server"]
    assert "autoscaler" not in done.stderr.lower()
    err = done.stderr.splitlines()
    assert "[pid_of] tasks 1/1" in err and "[pid_of] tasks 2/2" in err  # the last one always shown


UNITS_WHERE = """
import json, os, sys, time
from pathlib import Path
from vlforge.pipelines.executor import Unit, UnitStats, run_units


def where(unit):  # commits nothing, so the second run has every unit to do again
    time.sleep(0.25)
    return UnitStats(unit.id, read=1, extra={"pid": os.getpid()})


report = run_units([Unit(f"u-{i}", i) for i in range(40)], where, Path(sys.argv[1]), desc="t", num_cpus=2)
print(json.dumps({"driver": os.getpid(), "units": [s.unit for s in report.stats],
                  "pids": [s.extra["pid"] for s in report.stats]}))
"""


@pytest.mark.slow
def test_the_driver_runs_units_while_ray_starts_in_the_first_run_only(tmp_path: Path) -> None:
    """The first run in a directory: the first units run in the driver while Ray boots, the rest on workers. A
    rerun (what follows a driver killed by a unit) runs all of them on workers, though Ray boots as long."""
    runs = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", UNITS_WHERE, str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    first, rerun = runs
    for run in runs:
        assert run["units"] == [f"u-{i}" for i in range(40)]
    in_driver = [pid == first["driver"] for pid in first["pids"]]
    assert in_driver[0] and not in_driver[-1]
    assert in_driver == sorted(in_driver, reverse=True)  # the driver took units in order, then stopped
    assert all(pid != rerun["driver"] for pid in rerun["pids"])


def test_executor_processes_runs_units_in_forked_workers_and_retries_a_killed_one(tmp_path: Path) -> None:
    """No Ray: each unit runs in a worker forked from the driver (closures need no pickling); a worker killed
    mid-unit, what the OOM killer does, is retried, then given up, and a new worker takes its place."""
    driver = os.getpid()

    def where(unit: Unit[int]) -> UnitStats:
        if unit.payload == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return UnitStats(unit.id, read=1, extra={"pid": os.getpid(), "parent": os.getppid()})

    given_up = []

    def give_up(unit: Unit[int], cause: str) -> UnitStats:
        given_up.append((unit.id, cause))
        return UnitStats(unit.id, read=1, dropped=1)

    report = run_units([Unit(f"u-{i}", i) for i in range(6)], where, tmp_path / "out", desc="t", num_cpus=2,
                       executor="processes", give_up=give_up)
    assert [s.unit for s in report.stats] == [f"u-{i}" for i in range(6)]
    ran = [s.extra for s in report.stats if s.extra]
    assert len(ran) == 5 and all(e["pid"] != driver and e["parent"] == driver for e in ran)
    assert len({e["pid"] for e in ran}) <= 2 + MAX_ATTEMPTS  # the pool's two, plus one for each killed worker
    assert given_up == [("u-3", f"WorkerDied: worker process {given_up[0][1].split()[3]} was killed by SIGKILL "
                                f"({MAX_ATTEMPTS} attempts)")]
    assert report.given_up == {"u-3": given_up[0][1]}


def test_executor_processes_tries_a_task_again_when_its_worker_dies(tmp_path: Path) -> None:
    """run_tasks on forked workers: a call whose worker is killed (the OOM killer) runs again, as Ray retries
    its task; one that kills its worker every time ends the command after MAX_ATTEMPTS with WorkerDied."""
    from vlforge.pipelines.executor import executor_session, run_tasks
    from vlforge.pipelines.forkpool import WorkerDied
    from vlforge.shards.outdir import Plan, claim_out_dir

    tries = tmp_path / "tries"
    tries.mkdir()

    def square(n: int, deaths: int) -> int:
        with (tries / str(n)).open("a") as log:
            log.write("x")
        if (tries / str(n)).stat().st_size <= deaths:
            os.kill(os.getpid(), signal.SIGKILL)
        return n * n

    results: list[int] = []
    with claim_out_dir(tmp_path / "out", Plan(key="t", pipeline="t", units=r"u-\d")), \
            executor_session(executor="processes", num_cpus=2):
        run_tasks(square, [(1, 0), (2, 1), (3, 2)], results.append)
        assert sorted(results) == [1, 4, 9]
        assert {n: (tries / str(n)).read_text() for n in (1, 2, 3)} == {1: "x", 2: "xx", 3: "xxx"}
        with pytest.raises(WorkerDied, match=rf"^square: worker process \d+ was killed by SIGKILL \({MAX_ATTEMPTS} "
                                             "attempts\\)$"):
            run_tasks(square, [(4, 99)])
    assert (tries / "4").read_text() == "x" * MAX_ATTEMPTS


def test_executor_processes_fails_a_unit_that_raises_and_refuses_a_ray_address(tmp_path: Path) -> None:
    def broken(unit: Unit[int]) -> UnitStats:
        raise ValueError(f"bad payload {unit.payload}")

    with pytest.raises(UnitFailure, match="u-1: ValueError: bad payload 1"):
        run_units([Unit("u-1", 1)], broken, tmp_path / "out", desc="t", executor="processes")
    with pytest.raises(ValueError, match="joining a Ray cluster needs executor ray"):
        run_units([Unit("u-1", 1)], broken, tmp_path / "out2", desc="t", executor="processes",
                  ray_address="127.0.0.1:6379")


FORKED_ORPHANS = """
import os, sys, time
from pathlib import Path
from vlforge.pipelines.executor import Unit, UnitStats, run_units


def work(unit):
    Path(sys.argv[1], f"{unit.id}.pid").write_text(str(os.getpid()))
    time.sleep(0 if unit.id == "u-0" else 60)  # u-0's worker goes idle, u-1's stays busy
    return UnitStats(unit.id)


run_units([Unit("u-0", 0), Unit("u-1", 1)], work, Path(sys.argv[1]) / "out", desc="t", num_cpus=2,
          executor="processes")
"""


def test_executor_processes_workers_end_with_a_killed_driver(tmp_path: Path) -> None:
    """SIGKILL to the driver: its busy worker and its idle one both exit (no orphan keeps running)."""
    driver = subprocess.Popen([sys.executable, "-c", FORKED_ORPHANS, str(tmp_path)], cwd=tmp_path)
    pids = [tmp_path / "u-0.pid", tmp_path / "u-1.pid"]
    deadline = time.monotonic() + 60
    while not all(p.exists() for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # u-0 has returned: its worker waits idle
    workers = [int(p.read_text()) for p in pids]
    driver.kill()
    driver.wait()
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in workers)


@pytest.mark.slow
def test_typed_units_run_and_a_dict_result_fails_the_unit(tmp_path: Path) -> None:
    def count_lines(unit: Unit[Path]) -> UnitStats:  # defined here: Ray ships it by value, tests/ is no package
        return UnitStats(unit.id, read=len(unit.payload.read_text().splitlines()))

    def returns_a_dict(unit: Unit[Path]) -> dict:
        return {"read": 1}

    (tmp_path / "a.txt").write_text("1\n2\n3\n")
    report = run_units([Unit("u-1", tmp_path / "a.txt")], count_lines, tmp_path / "units", desc="t")
    assert report.stats == [UnitStats("u-1", read=3)]
    with pytest.raises(UnitFailure, match="u-2: TypeError: unit u-2: the unit function returned a dict, not UnitStats"):
        run_units([Unit("u-2", tmp_path / "a.txt")], returns_a_dict, tmp_path / "units2", desc="t")
