"""Owning an output directory: a marker of what vlforge wrote there, a lock per run, and a plan check.

`DIR/__vlforge/run.json` (the marker) records every plan run in the directory (its unit-name pattern,
its other files, its fingerprint) and every run token. A name a recorded plan gives marks a file as
possibly vlforge's; everything else is foreign and never deleted. A finished file is deleted or
replaced only if a run's journal (`journal.py`) also lists it as that run wrote it. Before any work, `claim_out_dir`
- refuses an output directory that is an input, lies inside one or contains one;
- refuses a directory holding foreign files, unless `allow_foreign_files` (they are then left alone);
- takes `DIR/__vlforge/run.lock` with `flock` for the whole run (released when the process dies, however),
  so a second run on the directory is refused while the first lives;
- refuses to resume a plan whose fingerprint (inputs, options, version) changed while files of it
  exist, saying which fields changed;
- installs a new run token in the fence (`fence.py`), so a killed run's orphaned workers can no
  longer commit.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vlforge.shards.atomic import parse_temp, write_json
from vlforge.shards.fence import FENCE_FILE, STATE_DIR, Fence
from vlforge.shards.journal import journal_token, start
from vlforge.shards.units import UNIT_FILE_DIRS, unit_of

MARKER = f"{STATE_DIR}/run.json"
LOCK_FILE = f"{STATE_DIR}/run.lock"
OWN_FILES = (MARKER, LOCK_FILE, FENCE_FILE)
MARKER_FORMAT = 1
ORPHAN_WAIT_S = 5.0  # how long the lock of a run whose driver died is waited for (see _take_lock)


class OutDirError(ValueError):
    """The output directory cannot be used for this run; says why and what to do."""


@dataclass(frozen=True)
class Plan:
    """What one pipeline run writes: units named by `units` (a regex), plus whole `extras` names."""

    key: str  # one per independent plan in a directory (render: task and input file)
    pipeline: str
    units: str
    fingerprint: Mapping[str, str] = field(default_factory=dict)
    extras: tuple[str, ...] = ()  # top-level files or folders the plan owns outright (clean's `_plan`)

    def owns_unit(self, unit: str | None) -> bool:
        return unit is not None and re.fullmatch(self.units, unit) is not None


@dataclass
class Marker:
    plans: dict[str, Plan] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Claim:
    """A claimed directory: the run's fence, and every token a vlforge run has used there."""

    out_dir: Path
    fence: Fence
    tokens: tuple[str, ...]


def read_marker(out: Path) -> Marker:
    path = out / MARKER
    if not path.exists():
        return Marker()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        plans = {k: Plan(**{**p, "extras": tuple(p["extras"])}) for k, p in data["plans"].items()}
        return Marker(plans=plans, tokens=list(data["tokens"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise OutDirError(f"{path}: unreadable vlforge marker ({exc}); use a new --out directory") from None


def write_marker(out: Path, marker: Marker) -> None:
    data = {"format": MARKER_FORMAT, "tokens": marker.tokens,
            "plans": {k: asdict(p) for k, p in sorted(marker.plans.items())}}
    write_json(out / MARKER, data)


def check_not_input(out: Path, inputs: Iterable[str | Path]) -> None:
    """An output directory must not be an input, lie inside an input folder or contain an input."""
    target = out.resolve()
    for entry in inputs:
        if "://" in str(entry):
            continue
        path = Path(entry).resolve()
        if path == target:
            raise OutDirError(f"--out {out}: is the input {entry}; choose a new output directory")
        if path in target.parents:
            raise OutDirError(f"--out {out}: is inside the input {entry}; choose a directory outside it")
        if target in path.parents:
            raise OutDirError(f"--out {out}: contains the input {entry}; choose a directory that holds no input")


def _is_own(rel: Path, plans: Iterable[Plan], tokens: Iterable[str]) -> bool:
    """Whether vlforge gives this name (relative to the output directory) to a file of these plans."""
    plans, name = list(plans), rel.name
    temp = parse_temp(name)
    if temp:
        if temp[1] is not None and temp[1] not in tokens:
            return False
        name = temp[0]
    named = rel.with_name(name)
    if str(named) in OWN_FILES or (rel.parts[0] == STATE_DIR and journal_token(name) in tokens):
        return True
    if len(rel.parts) == 1:
        if name == STATE_DIR or name in UNIT_FILE_DIRS or any(name in p.extras for p in plans):
            return True
    elif rel.parts[0] not in UNIT_FILE_DIRS:
        return False
    return any(p.owns_unit(unit_of(named)) for p in plans)


def foreign_files(out: Path, plans: Iterable[Plan], tokens: Iterable[str]) -> list[str]:
    """Names in the directory (and in `__vlforge/` and the per-unit folders) that no recorded plan gives."""
    plans, tokens = list(plans), set(tokens)
    found = []
    for path in sorted(out.iterdir()):
        rel = path.relative_to(out)
        if (path.name == STATE_DIR or path.name in UNIT_FILE_DIRS) and path.is_dir():
            found.extend(str(p.relative_to(out)) for p in sorted(path.iterdir())
                         if not _is_own(p.relative_to(out), plans, tokens))
        elif not _is_own(rel, plans, tokens):
            found.append(str(rel))
    return found


def fingerprint_changes(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """`FIELD: OLD -> NEW` for every field that differs (`(none)` where one side lacks it)."""
    return [f"{k}: {old.get(k, '(none)')} -> {new.get(k, '(none)')}"
            for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]


def _plan_files(out: Path, plan: Plan) -> bool:
    """Whether any tar, manifest or extra of the plan is on disk."""
    if any((out / name).exists() for name in plan.extras):
        return True
    candidates = list(out.glob("*.tar")) + [p for folder in UNIT_FILE_DIRS for p in (out / folder).glob("*")]
    return any(plan.owns_unit(unit_of(p)) for p in candidates)


@contextlib.contextmanager
def _run_lock(out: Path) -> Iterator[None]:
    """An exclusive flock for the life of this run; the kernel drops it once every process that shares the open
    lock file has ended: the driver and the workers it forked (`_take_lock`)."""
    fd = os.open(out / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _take_lock(fd, out)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


def _take_lock(fd: int, out: Path) -> None:
    """Lock `fd`, or refuse while another run lives. A run whose driver has died may still hold the lock for a
    moment: its forked workers share the driver's open lock file and exit within a second of its death
    (`executor.exit_with_parent`), so the lock is waited for, up to ORPHAN_WAIT_S, while its pid is gone."""
    deadline = time.monotonic() + ORPHAN_WAIT_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        if _alive(holder):
            raise OutDirError(f"--out {out}: in use by another vlforge run (pid {holder}); wait for it to end "
                              "or use another directory") from None
        if time.monotonic() > deadline:
            raise OutDirError(f"--out {out}: still locked, by processes of a vlforge run whose driver (pid {holder}) "
                              "has ended or runs where this machine cannot see it; wait for them to exit or use "
                              "another directory") from None
        time.sleep(0.05)


def _alive(pid: str) -> bool:
    """Whether a process with this pid runs here: not gone, not a zombie its parent has yet to reap (its files are
    closed). An unreadable pid counts as alive: refuse, do not wait."""
    if not pid.isdigit():
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"  # the state follows the command name, which may hold ")"


@contextlib.contextmanager
def claim_out_dir(out_dir: str | Path, plans: Plan | Sequence[Plan], *, inputs: Iterable[str | Path] = (),
                  allow_foreign_files: bool = False) -> Iterator[Claim]:
    """Own `out_dir` for one run of `plans` (see the module doc); the fence is active inside the block."""
    out = Path(out_dir)
    plans = [plans] if isinstance(plans, Plan) else list(plans)
    check_not_input(out, inputs)
    if out.exists() and not out.is_dir():
        raise OutDirError(f"--out {out}: not a directory")
    if out.exists() and not (out / MARKER).exists() and not allow_foreign_files:
        present = sorted(p.name for p in out.iterdir())
        if present:
            raise OutDirError(_foreign_message(out, present))
    (out / STATE_DIR).mkdir(parents=True, exist_ok=True)
    with _run_lock(out):
        marker = read_marker(out)
        recorded = {**marker.plans, **{plan.key: plan for plan in plans}}
        foreign = foreign_files(out, recorded.values(), marker.tokens)
        if foreign and not allow_foreign_files:
            raise OutDirError(_foreign_message(out, foreign))
        for plan in plans:
            previous = marker.plans.get(plan.key)
            if previous is not None and previous.fingerprint != plan.fingerprint and _plan_files(out, previous):
                changes = "; ".join(fingerprint_changes(previous.fingerprint, plan.fingerprint))
                raise OutDirError(f"--out {out}: holds a {previous.pipeline} run of other inputs or options "
                                  f"(changed: {changes}); rerun with the same ones or use a new directory")
        fence = Fence.new(out)
        marker.plans, marker.tokens = recorded, [*marker.tokens, fence.token]
        write_marker(out, marker)  # the token is recorded before any file carries it
        fence.install()
        start(fence)
        with fence.active():
            yield Claim(out, fence, tuple(marker.tokens))


def _foreign_message(out: Path, names: list[str]) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (f"--out {out}: holds files vlforge did not write ({shown}); use an empty or new directory, "
            "or --allow-foreign-files to write beside them (they are never deleted)")
