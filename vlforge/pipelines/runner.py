"""Exactly-once execution of work units on Ray.

A unit is processed whole by one task that commits by renaming its tars and then its
manifest into place. Before running, leftovers of killed runs are deleted and committed
units are skipped, so running the same command again resumes without loss or duplicates.
"""

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vlforge.shards.units import cleanup_uncommitted, committed_units


@dataclass(frozen=True)
class Unit:
    id: str
    payload: dict


@dataclass
class RunReport:
    stats: list[dict] = field(default_factory=list)  # one per unit processed in this run, in unit order
    skipped: list[str] = field(default_factory=list)  # committed by an earlier run
    removed: list[str] = field(default_factory=list)  # debris of killed runs
    ray_start_s: float = 0.0
    ray_stop_s: float = 0.0
    elapsed_s: float = 0.0


class UnitFailure(RuntimeError):
    """Some units raised; the others committed and a rerun resumes from there."""


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[tuple[float, list[float]]]:
    """Join or start Ray; shut down only what we started. Yields (start seconds, [stop seconds]).

    A local Ray sends no usage statistics and, unless ray was imported before with other settings,
    uses 127.0.0.1 as its node address (Ray's switch for that is read when ray is imported), so its
    traffic stays on loopback.
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not address:
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    stop: list[float] = []
    if ray.is_initialized():
        yield 0.0, stop
        return
    t0 = time.perf_counter()
    if address:
        ray.init(address=address, log_to_driver=True, logging_level=logging.WARNING)
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=True, logging_level=logging.WARNING)
    started = time.perf_counter() - t0
    try:
        yield started, stop
    finally:
        t1 = time.perf_counter()
        ray.shutdown()
        stop.append(time.perf_counter() - t1)


class Progress:
    """One line per finished unit: samples/s and kept ratio, to stderr."""

    def __init__(self, desc: str, total: int) -> None:
        self.desc, self.total = desc, total
        self.done = self.read = self.kept = 0
        self.t0 = time.perf_counter()

    def update(self, stats: dict) -> None:
        self.done += 1
        self.read += int(stats.get("read", 0))
        self.kept += int(stats.get("kept", 0))
        rate = self.read / max(time.perf_counter() - self.t0, 1e-9)
        kept = f"{100 * self.kept / self.read:.1f}%" if self.read else "-"
        print(f"[{self.desc}] units {self.done}/{self.total}  samples {self.read} ({rate:,.0f}/s)  kept {kept}",
              file=sys.stderr, flush=True)


def run_units(
    units: list[Unit],
    process: Callable[[Unit], dict],
    out_dir: str | Path,
    *,
    ray_address: str | None = None,
    num_cpus: int | None = None,
    desc: str = "run",
) -> RunReport:
    import ray

    ids = [u.id for u in units]
    if len(set(ids)) != len(ids):
        raise ValueError("work unit ids must be unique")
    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = RunReport(removed=cleanup_uncommitted(out))
    done = committed_units(out)
    report.skipped = [u.id for u in units if u.id in done]
    todo = [u for u in units if u.id not in done]
    results: dict[str, dict] = {}
    failures: dict[str, str] = {}
    with ray_session(ray_address, num_cpus) as (started, stopped):
        report.ray_start_s = started
        if todo:
            task = ray.remote(num_cpus=1, max_retries=3, retry_exceptions=False)(process)
            width = max(1, 2 * int(ray.available_resources().get("CPU", 1)))
            progress = Progress(desc, len(todo))
            pending: dict = {}
            queue = list(reversed(todo))
            while queue or pending:
                while queue and len(pending) < width:
                    unit = queue.pop()
                    pending[task.remote(unit)] = unit.id
                ready, _ = ray.wait(list(pending), num_returns=1)
                unit_id = pending.pop(ready[0])
                try:
                    results[unit_id] = ray.get(ready[0])
                except Exception as exc:  # noqa: BLE001 - reported below, other units go on
                    cause = getattr(exc, "cause", None) or exc  # a RayTaskError wraps the task's own exception
                    failures[unit_id] = f"{type(cause).__name__}: {cause}"
                    continue
                progress.update(results[unit_id])
    report.ray_stop_s = stopped[0] if stopped else 0.0
    report.stats = [results[u.id] for u in todo if u.id in results]
    report.elapsed_s = time.perf_counter() - t0
    if failures:
        lines = "\n".join(f"  {k}: {v.splitlines()[0] if v else v}" for k, v in sorted(failures.items()))
        raise UnitFailure(f"{len(failures)} work unit(s) failed (the rest committed; rerun to resume):\n{lines}")
    return report
