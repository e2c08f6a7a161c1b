"""The executor every pipeline runs on: exactly-once execution of work units on Ray (or forked processes).

It owns the session (`executor_session`: a private local Ray or `--ray-address`, started in the
background so the driver lists, plans and runs the first units while Ray boots; or, with executor
processes, processes forked from the driver), unit scheduling with retries and progress (`run_units`),
fenced plain tasks (`run_tasks`), and the typed result: a pipeline hands it `Unit`s carrying its own
payload type and gets back `UnitStats` per unit in a `RunReport`, whose `summary()` is the end-of-run
block every command prints. A run in which a unit failed or was given up ends with
`UnitFailure`, which carries the report: `vlforge.cli` prints its summary and exits with status 2.

A unit is processed whole by one task that commits by renaming its tars and then its
manifest into place. Before running, the output directory is claimed (lock, ownership, plan
fingerprint, a new fence token: `shards.outdir`), leftovers of this plan's killed runs are
deleted and committed units are skipped, so running the same command again resumes without
loss or duplicates, and a different command on the same directory is refused.
"""

import argparse
import functools
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, Field

from vlforge.pipelines.forkpool import ForkPool, WorkerDied
from vlforge.shards.fence import Fence, active_fence
from vlforge.shards.outdir import Claim, Plan, claim_out_dir
from vlforge.shards.units import cleanup_uncommitted, committed_units
from vlforge.shards.writer import ShardWriter

MAX_ATTEMPTS = 3  # a unit whose worker dies (out of memory, say) this many times is given up
UNIT_FAILED = "unit_failed"  # the manifest reason of the rows of a unit that was given up
UNIT_STAGE = "unit"  # their manifest stage


Executor = Literal["ray", "processes"]
EXECUTORS: tuple[str, ...] = get_args(Executor)
P = TypeVar("P")


@dataclass(frozen=True)
class Unit(Generic[P]):
    """One work unit: a stable id (its tars and manifest are named after it) and the pipeline's own payload."""

    id: str
    payload: P


@dataclass(frozen=True)
class UnitStats:
    """What one unit did: rows read, kept and dropped (by reason when the pipeline counts them).

    `extra` holds what only one pipeline measures (synthdog's language and CPU seconds, say).
    """

    unit: str
    read: int = 0
    kept: int = 0
    dropped: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunReport:
    stats: list[UnitStats] = field(default_factory=list)  # one per unit processed in this run, in unit order
    skipped: list[str] = field(default_factory=list)  # committed by an earlier run
    removed: list[str] = field(default_factory=list)  # debris of killed runs
    failed: dict[str, str] = field(default_factory=dict)  # unit -> why; not committed, a rerun retries it
    given_up: dict[str, str] = field(default_factory=dict)  # unit -> why; committed, its rows UNIT_FAILED
    elapsed_s: float = 0.0

    @property
    def read(self) -> int:
        return sum(s.read for s in self.stats)

    @property
    def kept(self) -> int:
        return sum(s.kept for s in self.stats)

    @property
    def dropped(self) -> int:
        return sum(s.dropped for s in self.stats)

    def reasons(self) -> dict[str, int]:
        """Dropped rows by reason over the units run, most frequent first."""
        total: Counter = Counter()
        for s in self.stats:
            total.update(s.reasons)
        return dict(total.most_common())

    def summary(self, out: str | Path) -> str:
        """The end-of-run lines every command prints: units, then rows read/kept/dropped by reason."""
        kept = f" ({100 * self.kept / self.read:.1f}%)" if self.read else ""
        lines = [f"units run {len(self.stats)}, skipped (already committed) {len(self.skipped)}, "
                 f"debris removed {len(self.removed)}, {self.elapsed_s:.1f} s"]
        if self.failed or self.given_up:
            lines.append(f"units failed {len(self.failed)} (not committed), "
                         f"given up {len(self.given_up)} (rows dropped as {UNIT_FAILED})")
        lines.append(f"read {self.read}, kept {self.kept}{kept}, dropped {self.dropped}  ->  {out}")
        lines += [f"  {n:>10}  {reason}" for reason, n in self.reasons().items()]
        return "\n".join(lines)


class UnitFailure(RuntimeError):
    """Units failed or were given up; the rest committed. `report` and `out` give the run's summary."""

    def __init__(self, report: RunReport, out: str | Path) -> None:
        self.report, self.out = report, out
        parts = []
        for units, what in ((report.failed, "failed (the rest committed; rerun to resume)"),
                            (report.given_up, f"given up (their rows dropped as {UNIT_FAILED}; "
                                              "a rerun does not retry them)")):
            if units:
                lines = "\n".join(f"  {k}: {v.splitlines()[0] if v else v}" for k, v in sorted(units.items()))
                parts.append(f"{len(units)} work unit(s) {what}:\n{lines}")
        super().__init__("\n".join(parts))


def give_up_rows(unit: Unit, out_dir: str | Path, rows: Iterable[dict], cause: str,
                 extra: dict[str, Any] | None = None) -> UnitStats:
    """Commit a unit whose worker kept dying: each of its rows dropped (UNIT_FAILED, stage "unit") saying why.

    The body of every pipeline's `give_up` for `run_units`; `rows` are the unit's manifest identity columns.
    """
    read = 0
    with ShardWriter(out_dir, unit.id) as writer:
        for row in rows:
            writer.drop({**row, "error": cause}, reason=UNIT_FAILED, stage=UNIT_STAGE)
            read += 1
    return UnitStats(unit.id, read=read, dropped=read, reasons={UNIT_FAILED: read}, extra=extra or {})


class _NotMainThread(logging.Filter):
    """Ray warns when started outside the main thread that it set no SIGTERM handler; executor_session sets it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()


class RaySession:
    """Ray for one command, started in a background thread: the driver lists inputs and plans meanwhile
    (`run_tasks` runs in the driver until Ray is up), instead of waiting about 3 s for Ray's daemons.

    The thread lives until `close()` and shuts Ray down itself: Linux's parent-death signal, with which
    Ray's daemons die with their starter, follows the starting thread, not the process.
    """

    def __init__(self, address: str | None, num_cpus: int | None) -> None:
        self.address, self.num_cpus = address, num_cpus
        self.start_s = self.stop_s = 0.0
        self._started, self._closing = threading.Event(), threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="vlforge-ray", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import ray

        t0 = time.perf_counter()
        try:
            if self.address:
                ray.init(address=self.address, log_to_driver=True, logging_level=logging.WARNING)
            else:
                with without_head_extras():
                    ray.init(address="local", num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=True,
                             logging_level=logging.WARNING)
        except BaseException as exc:  # noqa: BLE001 - handed to the driver by wait()
            self._error = exc
            return
        finally:
            self.start_s = time.perf_counter() - t0
            self._started.set()
        self._closing.wait()
        t1 = time.perf_counter()
        ray.shutdown()
        self.stop_s = time.perf_counter() - t1

    @property
    def starting(self) -> bool:
        return not self._started.is_set()

    def wait(self) -> None:
        """Block until Ray is up; raise what ray.init raised."""
        self._started.wait()
        if self._error is not None:
            raise self._error

    def close(self) -> None:
        self._closing.set()
        self._thread.join()


@contextmanager
def without_head_extras() -> Iterator[None]:
    """While `ray.init` starts a private local Ray: no autoscaler monitor and no API server (the dashboard head).

    One machine has nothing to autoscale and nobody to serve a dashboard or job API to. The two cost 1.4 CPU-s of
    Ray's ~5 at start, and the monitor held shutdown for a second (its SIGTERM handler reports to the GCS that
    shutdown has already stopped). Ray has no public switch for them (ray.init builds its RayParams itself; Ray
    starts without an API server on its own when the server's dependencies are missing), so Node's two starters
    do nothing while ray.init runs: class-wide, but this process starts no other Ray meanwhile (one session at a
    time). A Ray without that module or those methods starts both, and is only slower.
    """
    try:
        from ray._private.node import Node
    except ImportError:
        Node = None  # Ray moved it: both start
    starters = {name: getattr(Node, name, None) for name in ("start_monitor", "start_api_server")}
    if None in starters.values():
        yield
        return
    for name in starters:
        setattr(Node, name, lambda *_, **__: None)
    try:
        yield
    finally:
        for name, starter in starters.items():
            setattr(Node, name, starter)


@dataclass
class LocalSession:
    """`executor: processes`: no Ray; units and tasks run in processes forked from the driver (`forkpool`)."""

    workers: int
    starting: bool = False  # nothing to wait for
    start_s: float = 0.0
    stop_s: float = 0.0


class SessionOptions(BaseModel):
    """Where a command's units run: the recipe keys (and flags) every pipeline command shares.

    None of them changes what a run writes: plan fingerprints leave `SESSION_KEYS` out, so a rerun may switch.
    """

    ray_address: str | None = None  # join a Ray cluster (auto|HOST:PORT); default: a private local Ray
    num_cpus: Annotated[int, Field(ge=1)] | None = None  # processes at a time (the local Ray's CPUs); default: all
    executor: Executor = "ray"  # processes: forked from the driver, on this machine, no Ray

    def session(self) -> AbstractContextManager[RaySession | LocalSession | None]:
        return executor_session(self.ray_address, self.num_cpus, self.executor)


SESSION_KEYS = frozenset(SessionOptions.model_fields)


def add_session_flags(parser: argparse.ArgumentParser) -> None:
    """--ray-address, --num-cpus and --executor, each overriding its recipe key (`SessionOptions`)."""
    parser.add_argument("--ray-address", help="join a Ray cluster (auto|HOST:PORT); recipe: ray_address; "
                                              "default: a private local Ray")
    parser.add_argument("--num-cpus", type=int, help="units at a time: the local Ray's CPUs or forked processes "
                                                     "(recipe: num_cpus; default: all)")
    parser.add_argument("--executor", choices=EXECUTORS,
                        help="ray (default): a private local Ray or --ray-address; processes: processes forked "
                             "from this one, on this machine, without Ray's start-up (recipe: executor)")


_SESSION: RaySession | LocalSession | None = None


@contextmanager
def executor_session(address: str | None = None, num_cpus: int | None = None,
                     executor: str = "ray") -> Iterator[RaySession | LocalSession | None]:
    """The session a command's units and tasks run on: Ray (below) or, with `executor="processes"`, processes
    forked from this one on this machine (`num_cpus` at a time, default all), for runs too small to pay for
    Ray's start; `address` then is an error.

    Ray: join the Ray at `address`, or start a private local one, in the background; shut down only what we started.

    Yields the session (None inside another session or when Ray was initialized by the caller; the outer
    one owns Ray). Without an address Ray is started with `address="local"`, so a cluster named by
    RAY_ADDRESS or found under /tmp/ray is never joined by accident. A local Ray sends no usage
    statistics, requires its token for every control-plane call (Ray >= 2.59 turns token authentication on
    for a new local cluster unless RAY_AUTH_MODE says otherwise; pyproject.toml requires it), and, unless
    ray was imported before with other settings, uses 127.0.0.1 as its node address (read when ray is
    imported), so its traffic stays on loopback. Ray processes started here die with this process (Ray's
    kernel fate sharing). SIGTERM ends the command through SystemExit, as Ray's own handler would.
    """
    global _SESSION
    if executor not in EXECUTORS:
        raise ValueError(f"executor {executor!r}: one of {', '.join(EXECUTORS)}")
    if executor == "processes":
        if address:
            raise ValueError(f"--ray-address {address}: joining a Ray cluster needs executor ray")
        if _SESSION is not None:
            yield None
            return
        _SESSION = LocalSession(num_cpus or len(os.sched_getaffinity(0)))  # the CPUs this process may use
        try:
            yield _SESSION
        finally:
            _SESSION = None
        return
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not address:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    if _SESSION is not None or ray.is_initialized():
        yield None
        return
    logging.getLogger("ray._private.worker").addFilter(_NotMainThread())
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
    session = _SESSION = RaySession(address, num_cpus)
    try:
        yield session
    finally:
        _SESSION = None
        session.close()


def wait_for_ray() -> None:
    """Block while this command's Ray is starting: call before using the ray API directly. A command running
    with executor processes has no Ray: RuntimeError."""
    if isinstance(_SESSION, LocalSession):
        raise RuntimeError("this step runs on Ray (actors): run the command with executor ray")
    if _SESSION is not None:
        _SESSION.wait()


class Progress:
    """One line per finished unit: samples/s and kept ratio, to stderr."""

    def __init__(self, desc: str, total: int) -> None:
        self.desc, self.total = desc, total
        self.done = self.read = self.kept = 0
        self.t0 = time.perf_counter()

    def update(self, stats: UnitStats) -> None:
        self.done += 1
        self.read += stats.read
        self.kept += stats.kept
        rate = self.read / max(time.perf_counter() - self.t0, 1e-9)
        kept = f"{100 * self.kept / self.read:.1f}%" if self.read else "-"
        print(f"[{self.desc}] units {self.done}/{self.total}  samples {self.read} ({rate:,.0f}/s)  kept {kept}",
              file=sys.stderr, flush=True)


def default_plan(desc: str, ids: list[str]) -> Plan:
    """A plan that owns exactly these unit ids and has no fingerprint (callers that pass none)."""
    return Plan(key=desc, pipeline=desc, units="|".join(re.escape(i) for i in ids))


def _memory_or_crash(exc: BaseException) -> str | None:
    """A short cause when a unit's worker died or ran out of memory (worth retrying); None otherwise."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, (MemoryError, WorkerDied)) or _is_ray_crash(exc):
        first = (str(cause).strip().splitlines() or [""])[0][:200]
        return f"{type(cause).__name__}: {first}" if first else type(cause).__name__
    return None


def _is_ray_crash(exc: BaseException) -> bool:
    """A Ray failure other than the task's own exception (a worker or node died). Without Ray loaded
    (executor processes) there is none, and ray is not imported to find out."""
    if "ray" not in sys.modules:
        return False
    from ray.exceptions import RayError, RayTaskError

    return isinstance(exc, RayError) and not isinstance(exc, RayTaskError)


@contextmanager
def exit_with_parent(poll_s: float = 0.2) -> Iterator[None]:
    """Exit this process if its parent (the raylet) goes away while the block runs.

    A local Ray's raylet dies with the driver that started it; its workers would otherwise finish the
    task they are running. Their commits are fenced anyway; this makes them stop within `poll_s`.
    """
    parent, done = os.getppid(), threading.Event()

    def watch() -> None:
        while not done.wait(poll_s):
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="vlforge-exit-with-parent").start()
    try:
        yield
    finally:
        done.set()


def run_fenced(process: Callable, fence: Fence, *args: object) -> object:
    """Body of every unit task: commits carry the run's fence; the task dies with its raylet."""
    with fence.active(), exit_with_parent():
        return process(*args)


def run_tasks(fn: Callable, calls: Iterable[tuple], on_result: Callable[[Any], None] = lambda _: None) -> None:
    """Run fn(*args) for every args tuple, handing each result to `on_result` as it arrives.

    While this command's Ray is still starting, the driver runs the calls itself, one after another; the
    rest become Ray tasks (or, with executor processes, calls in forked workers). A call whose worker dies is
    tried again, up to MAX_ATTEMPTS times in all (Ray's task retries, or here on processes). Either way the calls
    carry the caller's fence (`shards.fence`), so their commits are refused once a newer run owns the output
    directory; Ray tasks die with their raylet, as unit tasks do.
    Progress goes to stderr: `[fn] tasks done/total`, at most once a second and when the last one is done.
    """
    fence = active_fence()
    if fence is None:
        raise RuntimeError("run_tasks: claim the output directory first (shards.outdir.claim_out_dir)")
    calls = list(calls)
    total, done, shown = len(calls), 0, time.perf_counter()

    def finished(result: Any) -> None:
        nonlocal done, shown
        on_result(result)
        done += 1
        if done == total or time.perf_counter() - shown >= 1.0:
            shown = time.perf_counter()
            print(f"[{fn.__name__}] tasks {done}/{total}", file=sys.stderr, flush=True)

    while calls and _SESSION is not None and _SESSION.starting:
        finished(fn(*calls.pop(0)))
    if not calls:
        return
    if isinstance(_SESSION, LocalSession):
        queue = list(reversed(list(enumerate(calls))))  # _run_forked takes from the end
        deaths: Counter = Counter()

        def settle(call: tuple[int, tuple], outcome: Callable[[], object]) -> None:
            try:
                result = outcome()
            except WorkerDied as exc:  # the OOM killer, say: tried again, as Ray retries a task whose worker died
                deaths[call[0]] += 1
                if deaths[call[0]] >= MAX_ATTEMPTS:
                    raise WorkerDied(f"{fn.__name__}: {exc} ({MAX_ATTEMPTS} attempts)") from None
                queue.append(call)
                return
            finished(result)

        _run_forked(functools.partial(run_fenced, fn, fence), queue, _SESSION.workers, settle,
                    args_of=lambda call: call[1])
        return
    wait_for_ray()
    import ray

    task = ray.remote(num_cpus=1, max_retries=MAX_ATTEMPTS - 1)(run_fenced).options(name=fn.__name__)
    pending = [task.remote(fn, fence, *args) for args in calls]
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        finished(ray.get(ready[0]))


def run_units(
    units: list[Unit],
    process: Callable[[Unit], UnitStats],
    out_dir: str | Path,
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    desc: str = "run",
    plan: Plan | Sequence[Plan] | None = None,
    inputs: Sequence[str | Path] = (),
    allow_foreign_files: bool = False,
    claim: Claim | None = None,
    give_up: Callable[[Unit, str], UnitStats] | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    executor: str = "ray",
) -> RunReport:
    """Run every uncommitted unit once, each as one Ray task calling `process(unit)`; return the report.

    The tasks run on the caller's `executor_session` when one is open, else on one started here for the run
    (`ray_address`, `num_cpus`, `executor`; ignored inside a caller's session); with executor processes each
    unit runs in a process forked from the driver (`forkpool`), where a death is retried as on Ray. While a
    Ray session is still starting, the driver runs units itself, one after another, but only in the first run
    in the directory:
    a rerun, which is what follows a driver killed by a unit (a decoder's crash, the OOM killer), runs every
    unit on Ray workers, whose deaths are retried and given up below.

    The output directory is claimed first (`shards.outdir.claim_out_dir`): pass the caller's `claim`
    when it already holds one (clean claims before planning), else `plan` (its fingerprint makes a
    mismatching rerun fail with what changed; without it a plan owning exactly these unit ids is
    used), the `inputs` the directory must not overlap and `allow_foreign_files`. Debris of this
    plan's units is deleted, nothing else. A unit whose worker dies or runs out of memory is retried
    until it has failed `max_attempts` times; then `give_up(unit, cause)` commits its rows as
    dropped (reason UNIT_FAILED, the cause beside it: `give_up_rows`) and returns its stats, or,
    without `give_up`, the unit fails. A unit raising any other exception fails at once. Once every
    other unit has run, a run with failed (uncommitted) units raises UnitFailure carrying the report;
    given-up units are committed, so the report comes back and the pipeline finishes its own steps (dedup,
    its summary files) before `finish(report, out)` ends the command with exit 2.
    """
    ids = [u.id for u in units]
    if len(set(ids)) != len(ids):
        raise ValueError("work unit ids must be unique")
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    t0 = time.perf_counter()
    with ExitStack() as stack:
        if claim is None:
            claim = stack.enter_context(claim_out_dir(out_dir, plan or default_plan(desc, ids), inputs=inputs,
                                                      allow_foreign_files=allow_foreign_files))
        report = _run_claimed(units, process, claim, ray_address, num_cpus, executor, desc, give_up, max_attempts)
    report.elapsed_s = time.perf_counter() - t0
    if report.failed:
        raise UnitFailure(report, out_dir)
    return report


def finish(report: RunReport, out: str | Path) -> None:
    """The end of every pipeline command: the summary on stderr, or UnitFailure when a unit failed or was given
    up (`vlforge.cli.main` prints the same summary, then the error, and exits 2)."""
    if report.failed or report.given_up:
        raise UnitFailure(report, out)
    print(report.summary(out), file=sys.stderr)


def _checked(stats: object, unit: Unit) -> UnitStats:
    if not isinstance(stats, UnitStats):
        raise TypeError(f"unit {unit.id}: the unit function returned a {type(stats).__name__}, not UnitStats")
    return stats


def _run_claimed(units: list[Unit], process: Callable[[Unit], UnitStats], claim: Claim,
                 ray_address: str | None, num_cpus: int | None, executor: str, desc: str,
                 give_up: Callable[[Unit, str], UnitStats] | None, max_attempts: int) -> RunReport:
    out = claim.out_dir
    report = RunReport(removed=cleanup_uncommitted(out, [u.id for u in units], claim.tokens))
    done = committed_units(out)
    report.skipped = [u.id for u in units if u.id in done]
    todo = [u for u in units if u.id not in done]
    results: dict[str, UnitStats] = {}
    attempts: Counter = Counter()
    progress = Progress(desc, len(todo))
    queue = list(reversed(todo))

    def settle(unit: Unit, outcome: Callable[..., object], *args: object) -> None:
        """Record what `outcome(*args)` gives for `unit`: its stats, or a crash (requeued until
        `max_attempts`, then given up), or a failure."""
        try:
            results[unit.id] = _checked(outcome(*args), unit)
        except Exception as exc:  # noqa: BLE001 - reported below, other units go on
            crash = _memory_or_crash(exc)
            attempts[unit.id] += 1
            if crash and attempts[unit.id] < max_attempts:
                queue.append(unit)
                return
            if crash and give_up is not None:
                cause = f"{crash} ({attempts[unit.id]} attempts)"
                results[unit.id] = _checked(give_up(unit, cause), unit)
                report.given_up[unit.id] = cause
            else:
                cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the task's exception
                report.failed[unit.id] = (f"failed {attempts[unit.id]} times: {crash}" if crash
                                          else f"{type(cause).__name__}: {cause}")
                return
        progress.update(results[unit.id])

    with executor_session(ray_address, num_cpus, executor):
        if isinstance(_SESSION, LocalSession):
            _run_forked(functools.partial(run_fenced, process, claim.fence), queue, _SESSION.workers, settle)
        elif isinstance(_SESSION, RaySession) and not _SESSION.address and claim.tokens == (claim.fence.token,):
            while queue and _SESSION.starting:  # the first run in `out`: the driver works while a local Ray boots
                settle(unit := queue.pop(), _run_in_driver, process, claim.fence, unit)
        if queue:
            wait_for_ray()
            import ray  # after executor_session has set Ray's environment

            task = ray.remote(num_cpus=1, max_retries=0)(run_fenced).options(  # retries counted here, see above
                name=getattr(process, "__name__", "unit"))
            width = max(1, 2 * int(ray.available_resources().get("CPU", 1)))
            pending: dict = {}
            while queue or pending:
                while queue and len(pending) < width:
                    unit = queue.pop()
                    pending[task.remote(process, claim.fence, unit)] = unit
                ready, _ = ray.wait(list(pending), num_returns=1)
                settle(pending.pop(ready[0]), ray.get, ready[0])
    report.stats = [results[u.id] for u in todo if u.id in results]
    return report


def _run_forked(fn: Callable, queue: list, workers: int, on_done: Callable[[Any, Callable[[], object]], None],
                args_of: Callable[[Any], tuple] = lambda item: (item,)) -> None:
    """fn(*args_of(item)) for the queue's items, last first, in forked workers, `workers` at a time;
    `on_done(item, outcome)` gets each outcome (`ForkPool.next_done`) and may put items back on the queue."""
    pool = ForkPool(workers, fn)
    try:
        while queue or len(pool):
            while queue and not pool.full:
                item = queue.pop()
                pool.start(item, *args_of(item))
            on_done(*pool.next_done())
    finally:
        pool.close()


def _run_in_driver(process: Callable[[Unit], UnitStats], fence: Fence, unit: Unit) -> UnitStats:
    with fence.active():
        return process(unit)
