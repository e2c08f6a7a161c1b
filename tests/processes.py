"""Killing a CLI run and everything it started (driver, Ray's daemons and workers), as a crash would."""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path


def stat_fields(pid: int | str) -> list[str]:
    """/proc/PID/stat after the command name (which may hold ")" or spaces): state, ppid, pgrp, session, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def running(pid: int) -> bool:
    """Not gone and not a zombie: a zombie has closed its files, and one nobody here reaps counts as ended."""
    try:
        return stat_fields(pid)[0] != "Z"
    except OSError:
        return False


def session_pids(sid: int) -> list[int]:
    """Processes of the session that `sid` leads (started with start_new_session=True)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int(stat_fields(entry.name)[3]) == sid:
                    pids.append(int(entry.name))
    return pids


def kill_session(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 30) -> bool:
    """Send `sig` to every process of proc's session until none is left or `timeout` passes; True if all gone."""
    deadline = time.monotonic() + timeout
    while (pids := session_pids(proc.pid)) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        proc.poll()
        time.sleep(0.05)
    return not session_pids(proc.pid)
