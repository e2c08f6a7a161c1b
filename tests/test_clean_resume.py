"""Exactly once: SIGKILL the CLI at several points, rerun the same command, compare with an uninterrupted run."""

import hashlib
import re
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from processes import kill_session
from test_clean_support import ImageServer, cli_command, jpeg, manifest_rows, photo, write_laion, write_recipe

from vlforge.shards.manifest import MANIFEST_DIR
from vlforge.shards.verify import verify_dir

pytestmark = pytest.mark.slow

CAPTION = "A clear photograph of galaxy number {} taken by a telescope"
ROWS, ROWS_PER_UNIT = 24, 3
Condition = Callable[[Path, ImageServer, tuple[int, int]], bool]  # start: (manifests, requests)


def _manifests(out: Path) -> list[Path]:
    return sorted((out / MANIFEST_DIR).glob("*.manifest.parquet"))


def _run(args: list[str], out: Path, server: ImageServer, kill_when: Condition | None) -> str:
    """Run the CLI; with `kill_when`, SIGKILL it as soon as the condition holds. Returns stderr."""
    start = (len(_manifests(out)), len(server.requests))
    proc = subprocess.Popen(cli_command(*args), start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    if kill_when is None:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        return err
    deadline = time.monotonic() + 300
    while not kill_when(out, server, start):
        assert proc.poll() is None, f"the run ended before the kill point: {proc.communicate()[1]}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    assert kill_session(proc)
    proc.wait(timeout=30)
    return ""


def _planning(out: Path, server: ImageServer, start: tuple[int, int]) -> bool:
    return (out / "_plan").exists()


def _downloading(out: Path, server: ImageServer, start: tuple[int, int]) -> bool:
    return len(server.requests) >= start[1] + 2


def _one_more_commit(out: Path, server: ImageServer, start: tuple[int, int]) -> bool:
    return len(_manifests(out)) > start[0]


def _writing_a_shard(out: Path, server: ImageServer, start: tuple[int, int]) -> bool:
    """A tar is being written under its temporary name (or, failing to catch that, units are committing)."""
    return any(out.glob(".*.tar.tmp")) or len(_manifests(out)) >= start[0] + 2


def _image_dedup(out: Path, server: ImageServer, start: tuple[int, int]) -> bool:
    """The cross-unit image dedup pass is running (it works in `_dedup/`)."""
    return (out / "_dedup").exists()


def _fingerprint(out: Path) -> tuple[list, dict]:
    rows = sorted((r["row"], r["uid"], r["status"], r["reason"], r["stage"], r["tar"], r["key"])
                  for r in manifest_rows(out))
    tars = {}
    for path in sorted(out.glob("*.tar")):
        with tarfile.open(path) as tar:
            tars[path.name] = [(m.name, hashlib.sha256(tar.extractfile(m).read()).hexdigest()) for m in tar]
    return rows, tars


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("resume")
    base = photo("hubble_deep_field")
    images = [jpeg(base[i * 9:i * 9 + 200, i * 13:i * 13 + 200].copy()) for i in range(ROWS)]
    with ImageServer() as server:
        urls = [server.add(f"/{i}.jpg", data, delay=0.25) for i, data in enumerate(images)]
        urls[5] = server.url("/gone.jpg")  # 404
        urls[10] = urls[2]  # a URL seen before (another unit)
        urls[17] = server.add("/copy-of-4.jpg", images[4], delay=0.25)  # the same bytes as row 4 (another unit)
        urls[20] = "http://10.9.8.7/private.jpg"
        rows = [{"SAMPLE_ID": i, "URL": url, "TEXT": CAPTION.format(i)} for i, url in enumerate(urls)]
        path = write_laion(tmp / "dump.parquet", rows, row_group_size=5)
        recipe = write_recipe(tmp / "recipe.yaml", rows_per_unit=ROWS_PER_UNIT,
                              download={"allow_loopback": True, "timeout": 5, "thread_count": 2},
                              shards={"max_samples": 2})
        yield tmp, path, recipe, server


def test_killed_runs_resume_to_the_uninterrupted_result(dump) -> None:
    tmp, path, recipe, server = dump

    def args(out: Path) -> list[str]:
        return ["--recipe", str(recipe), "--input", str(path), "--out", str(out), "--num-cpus", "2"]

    baseline = tmp / "baseline"
    _run(args(baseline), baseline, server, None)
    expected = _fingerprint(baseline)
    assert {"duplicate_url", "duplicate_sha256", "http_404", "blocked_private"} <= {r[3] for r in expected[0]}

    out = tmp / "killed"
    for condition in (_planning, _downloading, _one_more_commit, _writing_a_shard, _one_more_commit, _image_dedup):
        _run(args(out), out, server, condition)
    committed = {p.name: p.stat().st_mtime_ns for p in _manifests(out)}
    err = _run(args(out), out, server, None)

    assert _fingerprint(out) == expected
    assert sorted(r["row"] for r in manifest_rows(out)) == list(range(ROWS))
    assert not list(out.glob(".*")) and verify_dir(out).ok
    # finished units were not redone: skipped, and their manifests untouched (except the one the image
    # dedup pass turns a row of into duplicate_sha256, if that pass had not finished before the kill)
    assert int(re.search(r"skipped \(already committed\) (\d+)", err).group(1)) == len(committed) > 0
    dedup_unit = {r["tar_unit"] for r in _rows_with_unit(out) if r["reason"] == "duplicate_sha256"}
    for name, mtime in committed.items():
        if name.split(".")[0] not in dedup_unit:
            assert (out / MANIFEST_DIR / name).stat().st_mtime_ns == mtime, f"{name} was redone"


def _rows_with_unit(out: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return [{**row, "tar_unit": path.name.split(".")[0]} for path in _manifests(out)
            for row in pq.read_table(path).to_pylist()]
