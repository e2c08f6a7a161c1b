"""Issue 8, items 3 and 11: one run per output directory, fenced commits, Ray processes that die with
their driver, and a private local Ray."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from processes import kill_session, running, session_pids

from vlforge.cli import main
from vlforge.shards.fence import FencedOut
from vlforge.shards.manifest import MANIFEST_DIR, read_manifests
from vlforge.shards.outdir import OutDirError, Plan, claim_out_dir
from vlforge.shards.writer import ShardWriter

PLAN = Plan(key="p", pipeline="test", units=r"u-\d")
HOLD = f"""
import sys, time
from vlforge.shards.outdir import Plan, claim_out_dir
with claim_out_dir(sys.argv[1], Plan(key="p", pipeline="test", units={PLAN.units!r})):
    print("held", flush=True)
    time.sleep(600)
"""


def write_text(out: Path, prefix: str, n: int, max_samples: int = 1) -> ShardWriter:
    writer = ShardWriter(out, prefix, max_samples=max_samples)
    for i in range(n):
        writer.write(f"s{i}", {"txt": f"sample {i}"}, {"uid": str(i), "source": "t"})
    return writer


def test_a_second_run_is_refused_while_the_first_lives_and_allowed_once_it_died(tmp_path, capsys):
    out = tmp_path / "out"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(OutDirError, match=rf"in use by another vlforge run \(pid {holder.pid}\)"), \
                claim_out_dir(out, PLAN):
            pass
        jsonl = tmp_path / "text.jsonl"
        jsonl.write_text('{"text": "hello"}\n')
        assert main(["render", "--task", "text", "--input", str(jsonl), "--out", str(out)]) == 2
        assert f"in use by another vlforge run (pid {holder.pid})" in capsys.readouterr().err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with claim_out_dir(out, PLAN):  # the lock died with its holder
        pass


ORPHAN = f"""
import os, sys, time
from vlforge.shards.outdir import Plan, claim_out_dir
with claim_out_dir(sys.argv[1], Plan(key="p", pipeline="test", units={PLAN.units!r})):
    child = os.fork()  # a forked worker: it shares the driver's open lock file
    if child == 0:
        for fd in (1, 2):  # the test reads the driver's output to its end
            os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
        time.sleep(3)
        os._exit(0)
    print(child, flush=True)
    os._exit(0)  # the driver dies; its worker lives on for a moment
"""


def test_a_rerun_waits_for_the_lingering_worker_of_a_dead_driver(tmp_path):
    """A rerun right after a driver died finds its lock still held by a forked worker, which exits within a
    second: the rerun waits for it instead of refusing, also while the dead driver is a zombie its parent has
    not reaped yet. (A live holder is refused at once: test_a_second_run_is_refused_while_the_first_lives...)"""
    out = tmp_path / "out"
    driver = subprocess.Popen([sys.executable, "-c", ORPHAN, str(out)], stdout=subprocess.PIPE, text=True)
    child = int(driver.stdout.readline())
    driver.stdout.close()
    while running(driver.pid):  # a zombie: this test is its parent and reaps it only below
        time.sleep(0.01)
    assert running(child)  # still holding the lock
    try:
        with claim_out_dir(out, PLAN):
            assert not running(child)  # the claim waited for it
    finally:
        driver.wait()
    assert (out / "__vlforge" / "run.lock").read_text() == f"{os.getpid()}\n"


def test_a_dead_runs_lock_that_is_never_released_is_refused_with_why(tmp_path, monkeypatch):
    import vlforge.shards.outdir as outdir

    monkeypatch.setattr(outdir, "ORPHAN_WAIT_S", 0.2)
    out = tmp_path / "out"
    keeper = subprocess.Popen([sys.executable, "-c", ORPHAN.replace("time.sleep(3)", "time.sleep(600)"),
                               str(out)], stdout=subprocess.PIPE, text=True)
    child = int(keeper.stdout.readline())
    keeper.stdout.close()
    keeper.wait()
    try:
        why = rf"still locked, by processes of a vlforge run whose driver \(pid {keeper.pid}\) has ended"
        with pytest.raises(OutDirError, match=why), claim_out_dir(out, PLAN):
            pass
    finally:
        os.kill(child, signal.SIGKILL)


def test_commits_of_a_replaced_run_are_refused(tmp_path):
    out = tmp_path / "out"
    with claim_out_dir(out, PLAN) as killed:
        pass
    orphan = killed.fence  # what a worker of the killed run still holds
    with claim_out_dir(out, PLAN) as current:
        with current.fence.guard():
            pass
        with pytest.raises(FencedOut, match="a newer run"), orphan.guard():
            pass
        with orphan.active(), pytest.raises(FencedOut, match="a newer run"):
            write_text(out, "u-1", 2)  # the second write finishes the first tar: its rename is refused
        assert not list(out.glob("u-1-*.tar"))
        assert [p.name for p in out.glob(".u-1-*.tmp")] == [f".u-1-000000.tar.{orphan.token}.tmp"]
        with current.fence.active():
            write_text(out, "u-2", 2).close()
    assert read_manifests(out).num_rows == 2


def test_no_manifest_lands_for_a_unit_whose_tar_is_gone(tmp_path):
    out = tmp_path / "out"
    with claim_out_dir(out, PLAN):
        writer = write_text(out, "u-1", 2)  # u-1-000000.tar committed, u-1-000001.tar open
        (out / "u-1-000000.tar").unlink()  # as a newer run's cleanup would
        with pytest.raises(FencedOut, match=r"u-1.manifest.parquet: not committed, its files are gone: "
                                            r"u-1-000000.tar"):
            writer.close()
    assert not (out / MANIFEST_DIR / "u-1.manifest.parquet").exists()


def slow_render_input(tmp_path: Path, lines: int) -> Path:
    """PNG noise re-encoded to JPEG per line: units that take a while."""
    src = tmp_path / "in"
    (src / "images").mkdir(parents=True)
    noise = np.random.default_rng(0).integers(0, 255, (500, 500, 3), dtype=np.uint8)
    Image.fromarray(noise).save(src / "images/noise.png")
    jsonl = src / "noise.jsonl"
    jsonl.write_text("".join(json.dumps({"image": "images/noise.png", "caption": f"noise {i}"}) + "\n"
                             for i in range(lines)))
    return jsonl


@pytest.mark.slow
def test_ray_processes_of_a_killed_driver_exit_and_commit_nothing_after_a_new_run_starts(tmp_path):
    jsonl = slow_render_input(tmp_path, 120)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "vlforge.cli", "render", "--task", "caption", "--input", str(jsonl),
               "--out", str(out), "--lines-per-unit", "10"]
    proc = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not list(out.glob(f"{MANIFEST_DIR}/*.parquet")):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # the driver only: its raylet, agents and workers are left alone
        proc.wait()
        with claim_out_dir(out, Plan(key="other", pipeline="test", units="none")):
            committed = sorted(p.name for p in out.glob(f"{MANIFEST_DIR}/*.parquet"))
            time.sleep(3)  # workers still running would have finished a unit by now, their commit refused
            assert sorted(p.name for p in out.glob(f"{MANIFEST_DIR}/*.parquet")) == committed
        deadline = time.monotonic() + 120
        while session_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not session_pids(proc.pid), "Ray processes of the killed driver are still running"
    finally:
        kill_session(proc)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = sorted(read_manifests(out).to_pylist(), key=lambda r: r["line"])
    assert [r["line"] for r in lines] == list(range(1, 121)) and {r["status"] for r in lines} == {"kept"}


RAY_LOCAL = """
import ray
from vlforge.pipelines.executor import executor_session
with executor_session(num_cpus=1) as session:
    session.wait()
    print(ray.get(ray.remote(lambda: "task ran").remote()))
"""


@pytest.mark.slow
def test_ray_session_starts_a_private_ray_even_when_ray_address_names_a_cluster():
    env = {**os.environ, "RAY_ADDRESS": "127.0.0.1:9"}  # nothing listens there; joining it would fail
    result = subprocess.run([sys.executable, "-c", RAY_LOCAL], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.endswith("task ran\n"), result.stderr[-2000:]
