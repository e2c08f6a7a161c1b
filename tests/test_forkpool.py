"""The forked worker pool behind executor processes: replies, deaths and what cannot travel back."""

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from vlforge.pipelines.forkpool import ForkPool, WorkerDied


class NeedsTwo(Exception):
    """Pickles (args) but does not unpickle: __init__ wants two arguments, as some of vlforge's exceptions do."""

    def __init__(self, what: str, why: str) -> None:
        super().__init__(f"{what}: {why}")


def call(kind: str) -> object:
    if kind == "pid":
        return os.getpid()
    if kind == "exit":
        sys.exit(0)
    if kind == "unreadable":
        raise NeedsTwo("a", "b")
    raise ValueError(f"bad {kind}")


def outcomes(pool: ForkPool, kinds: list[str]) -> dict[str, object]:
    """Run each kind, one call per kind, and collect each outcome: the result or the exception raised."""
    results: dict[str, object] = {}
    pending = list(kinds)
    while pending or len(pool):
        while pending and not pool.full:
            kind = pending.pop(0)
            pool.start(kind, kind)
        tag, outcome = pool.next_done()
        try:
            results[tag] = outcome()
        except Exception as exc:  # noqa: BLE001 - what the test looks at
            results[tag] = exc
    return results


def test_results_errors_and_exits_come_back_per_call_and_the_pool_goes_on() -> None:
    pool = ForkPool(2, call)
    try:
        got = outcomes(pool, ["pid", "exit", "unreadable", "oops", "pid2"])
    finally:
        pool.close()
    assert isinstance(got["pid"], int) and got["pid"] != os.getpid()
    assert isinstance(got["exit"], WorkerDied) and "exited with status 0 mid-call" in str(got["exit"])
    assert isinstance(got["unreadable"], RuntimeError) and "NeedsTwo" in str(got["unreadable"])
    assert isinstance(got["oops"], ValueError) and str(got["oops"]) == "bad oops"
    assert any("in worker process" in note for note in got["oops"].__notes__)  # the worker's traceback
    assert isinstance(got["pid2"], ValueError)  # "pid2" is no kind: the call raised in a worker that went on


def test_an_idle_worker_killed_meanwhile_is_replaced() -> None:
    pool = ForkPool(1, call)
    try:
        first = outcomes(pool, ["pid"])["pid"]
        os.kill(first, signal.SIGKILL)  # the OOM killer picking an idle worker
        deadline = time.monotonic() + 10
        while _running(first):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = outcomes(pool, ["pid"])["pid"]
    finally:
        pool.close()
    assert isinstance(second, int) and second != first


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_pool_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="workers must be >= 1"):
        ForkPool(0, call)
