"""`executor: processes`: calls run in worker processes forked from the driver, no Ray.

On one machine this skips what a private local Ray costs a command (its daemons' start, about 3.5 CPU-seconds,
and the shutdown). A pool is made for one function: its workers are forked when first needed and inherit the
function, the driver's loaded modules and the fence, so nothing but each call's arguments and result is
pickled; a worker serves calls one at a time until the pool closes (what it imports, it imports once).
Fork while the driver has done no threaded work: forked after the driver had itself read parquet files with
pyarrow's thread pools, the clean bench's workers ran units half as fast (measured, cause not pinned down). A worker
that dies mid-call (the OOM killer, a decoder's crash) is seen for what it is: that call ends in `WorkerDied`,
which the executor retries as it retries a Ray worker's death, and a new worker takes its place.
"""

from __future__ import annotations

import importlib
import importlib.util
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

_FORK = multiprocessing.get_context("fork")
IDLE_POLL_S = 0.5  # how often an idle worker checks that its driver is still there
PRELOAD = ("pandas",)  # see _preload


class WorkerDied(RuntimeError):
    """A worker process ended in the middle of a call: killed (out of memory, say) or crashed."""


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection


def _serve(conn: Connection, fn: Callable, parent: int) -> None:
    """A worker's loop: each message is one call's arguments; the reply is ("ok", result) or ("error", exc),
    the exception carrying the worker's traceback as a note. A call that ends the process instead (SystemExit,
    a signal) is the worker's death to the driver, as on Ray. Ctrl-C is the driver's to handle: it kills its
    workers. An idle worker whose driver is gone exits at once, though a sibling forked later still holds a
    copy of the driver's end of its pipe; a busy one exits through the call's own watch (`run_fenced`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        while not conn.poll(IDLE_POLL_S):
            if os.getppid() != parent:
                return
        try:
            args = conn.recv()
        except EOFError:
            return
        if args is None:  # the pool closes (not EOF: workers forked later hold copies of the driver's end)
            return
        try:
            outcome: tuple[str, Any] = ("ok", fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the driver, which decides
            exc.add_note(f"in worker process {os.getpid()}:\n{traceback.format_exc()}")
            outcome = ("error", exc)
        try:
            conn.send(outcome)
        except Exception as exc:  # noqa: BLE001 - a result or an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(outcome[1]).__name__} could not be sent back: {exc}")))


class ForkPool:
    """Up to `workers` forked processes running `fn`; `start` hands one a call, `next_done` waits for any."""

    def __init__(self, workers: int, fn: Callable) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.workers, self.fn = workers, fn
        self._idle: list[_Worker] = []
        self._busy: dict[Connection, tuple[_Worker, Any]] = {}

    def __len__(self) -> int:
        return len(self._busy)

    @property
    def full(self) -> bool:
        return len(self._busy) >= self.workers

    def start(self, tag: Any, *args: object) -> None:
        """Run fn(*args) in an idle worker (forked now if there is none); `tag` comes back with its outcome."""
        while True:
            worker = self._idle.pop() if self._idle else self._fork()
            try:
                worker.conn.send(args)
                break
            except OSError:  # an idle worker killed meanwhile (the OOM killer, say): another takes the call
                worker.conn.close()
                worker.process.join()
        self._busy[worker.conn] = (worker, tag)

    def next_done(self) -> tuple[Any, Callable[[], object]]:
        """(tag, outcome) of a finished call: `outcome()` returns its result or raises what it raised, or
        WorkerDied when its worker ended without a reply."""
        conn = wait(list(self._busy))[0]
        worker, tag = self._busy.pop(conn)
        try:
            reply = conn.recv_bytes()
        except EOFError:
            conn.close()
            worker.process.join()
            return tag, _raiser(WorkerDied(f"worker process {worker.process.pid} "
                                           f"{_how_it_ended(worker.process.exitcode)}"))
        self._idle.append(worker)
        try:
            status, value = pickle.loads(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. an exception class whose __init__ takes other arguments
            return tag, _raiser(RuntimeError(f"a worker's reply could not be read back: {exc!r}"))
        return tag, (lambda: value) if status == "ok" else _raiser(value)

    def close(self) -> None:
        """Idle workers are told to end; busy ones (a failed command's leftovers) are killed, their commits
        fenced anyway."""
        for worker in self._idle:
            try:
                worker.conn.send(None)
            except OSError:  # already gone
                worker.process.kill()
        for worker, _ in self._busy.values():
            worker.process.kill()
        for worker in [*self._idle, *(w for w, _ in self._busy.values())]:
            worker.process.join()
            worker.conn.close()
        self._idle.clear()
        self._busy.clear()

    def _fork(self) -> _Worker:
        _preload()
        ours, theirs = _FORK.Pipe()
        process = _FORK.Process(target=_serve, args=(theirs, self.fn, os.getpid()), daemon=True,
                                name="vlforge-worker")
        process.start()
        theirs.close()  # the worker's end lives in the worker only, so its death is an EOF here
        return _Worker(process, ours)


def _preload() -> None:
    """Import in the driver, once, what every worker would import on its own: pyarrow imports pandas the first
    time it converts Python values (half a second a worker). Importing starts no threads."""
    for name in PRELOAD:
        if name not in sys.modules and importlib.util.find_spec(name) is not None:
            importlib.import_module(name)


def _raiser(exc: BaseException) -> Callable[[], object]:
    def outcome() -> object:
        raise exc
    return outcome


def _how_it_ended(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:  # a real-time signal has no name
            return f"was killed by signal {-code}"
    return f"exited with status {code} mid-call"
