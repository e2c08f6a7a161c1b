"""Measuring a whole command, and the units `vlforge clean` commits while it runs.

A command runs in its own process session so that its memory can be summed over every process it starts
(driver, Ray workers, Ray's daemons). A unit's manifest is its commit mark, so the manifests' modification
times say when the unit work started to land and when it ended, without instrumenting vlforge.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq


@dataclass
class Measured:
    seconds: float
    peak_rss: int
    peak_pss: int
    started: float  # time.time() at launch
    ended: float
    stdout: str
    stderr: str


def gib(n: int) -> float:
    return n / (1 << 30)


def _session_memory(sid: int) -> tuple[int, int]:
    """(RSS, PSS) in bytes summed over the processes of a session."""
    rss = pss = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[3]) != sid:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss


def run_measured(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
                 sample_memory: bool = True) -> Measured:
    """Run a command in its own session, sampling the memory of all its processes every 0.2 s.

    Sampling reads every process's smaps_rollup: about 40 ms of CPU a sample for a Ray run's dozen processes,
    a sixth of a core taken from the command measured. Timed runs pass `sample_memory=False` (peaks are 0)."""
    t0, started = time.perf_counter(), time.time()
    proc = subprocess.Popen(argv, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd)
    peak_rss = peak_pss = 0
    output: dict[str, str] = {}
    reader = threading.Thread(target=lambda: output.update(zip(("out", "err"), proc.communicate(), strict=True)))
    reader.start()
    while reader.is_alive():
        if sample_memory:
            rss, pss = _session_memory(proc.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
        reader.join(0.2 if sample_memory else None)
    seconds, ended = time.perf_counter() - t0, time.time()
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed:\n{output.get('err', '')[-3000:]}")
    return Measured(seconds, peak_rss, peak_pss, started, ended, output.get("out", ""), output.get("err", ""))


def _commits(out: Path) -> tuple[np.ndarray, np.ndarray]:
    """(commit times, input samples) of an output directory's units, in commit order."""
    from vlforge.shards.manifest import list_manifests

    units = sorted((p.stat().st_mtime, pq.read_metadata(p).num_rows) for p in list_manifests(out))
    return np.array([t for t, _ in units]), np.array([n for _, n in units])


def fixed_cost(run: Measured, out: Path) -> tuple[float, float]:
    """(command start to the first committed manifest, last manifest to exit) in seconds."""
    times, _ = _commits(out)
    return times[0] - run.started, run.ended - times[-1]


def unit_rate(out: Path) -> float | None:
    """Input samples per second while units commit: the least-squares slope of the samples committed so far
    against commit time. Start-up, the first units' own work and shutdown lie outside it; unlike
    units / (last - first) it does not depend on whether parallel workers commit in step or staggered.
    None below three units (no slope to speak of)."""
    times, samples = _commits(out)
    if len(times) < 3:
        return None
    return float(np.polyfit(times - times[0], np.cumsum(samples), 1)[0])
