"""Exactly once: SIGKILL `vlforge synthdog` mid-run, run the same command again, compare with an
uninterrupted run made by one worker in this process: the same manifests and the same tar contents,
nothing lost or duplicated, and no truncated tar under a final name at any kill point."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from processes import kill_session
from test_synthdog_support import generate_here

from vlforge.shards.manifest import MANIFEST_DIR
from vlforge.shards.verify import verify_dir
from vlforge.synthdog.config import load_config

pytestmark = pytest.mark.slow

# The `vlforge` command line itself, in a process of its own that the test kills.
HARNESS = "import sys; from vlforge.cli import main; sys.exit(main(sys.argv[1:]))"


def _command(out: Path) -> list[str]:
    return [sys.executable, "-c", HARNESS, "synthdog", "--lang", "en,zh", "--count", "20", "--unit-size", "4",
            "--seed", "3", "--num-cpus", "2", "--out", str(out)]


def _run(out: Path, kill_when=None) -> None:
    proc = subprocess.Popen(_command(out), start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if kill_when is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        return
    deadline = time.monotonic() + 300
    while not kill_when(out):
        assert proc.poll() is None, f"the run ended before the kill point: {proc.communicate()[1]}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert kill_session(proc)
    proc.wait(timeout=30)


def _manifests(out: Path) -> list[Path]:
    return sorted((out / MANIFEST_DIR).glob("*.manifest.parquet"))


def _assert_final_tars_complete(out: Path) -> None:
    """Every tar under its final name ends with tar's end-of-archive blocks and reads to the end."""
    for path in out.glob("*.tar"):
        data = path.read_bytes()
        assert len(data) % 512 == 0 and data[-1024:] == bytes(1024), f"{path.name} is truncated"
        with tarfile.open(path) as tar:
            for member in tar:
                assert len(tar.extractfile(member).read()) == member.size


def _fingerprint(out: Path) -> tuple[list, dict]:
    rows = sorted(tuple(sorted(row.items()))
                  for path in _manifests(out) for row in pq.read_table(path).to_pylist())
    tars = {}
    for path in sorted(out.glob("*.tar")):
        with tarfile.open(path) as tar:
            tars[path.name] = [(m.name, hashlib.sha256(tar.extractfile(m).read()).hexdigest()) for m in tar]
    return rows, tars


def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path):
    whole = tmp_path / "whole"
    generate_here(whole, ["en", "zh"], 20, 4, 3, load_config({}))
    expected = _fingerprint(whole)
    assert len(expected[1]) == 10 and sum(len(m) for m in expected[1].values()) == 2 * 40

    killed = tmp_path / "killed"
    _run(killed, kill_when=lambda out: len(_manifests(out)) >= 2)
    committed = len(_manifests(killed))
    assert 2 <= committed < 10
    _assert_final_tars_complete(killed)
    _run(killed, kill_when=lambda out: any(out.glob(".*.tar.tmp")) or len(_manifests(out)) >= committed + 2)
    _assert_final_tars_complete(killed)
    _run(killed)
    assert _fingerprint(killed) == expected
    assert verify_dir(killed).ok
