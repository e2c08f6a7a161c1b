"""`--ray-address` joins a cluster: one started here with `ray start --head` on 127.0.0.1."""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from processes import kill_session
from test_clean_support import ImageServer, cli_command, jpeg, manifest_rows, photo, write_laion, write_recipe

pytestmark = pytest.mark.slow

CAPTION = "A clear photograph of an astronaut standing outdoors on a sunny day"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ray_head():
    """A Ray head on 127.0.0.1 (token auth, its own temp dir), stopped by signalling only its own processes."""
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="vlray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray then uses 127.0.0.1 as this node's address
    head = subprocess.Popen(
        [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block", f"--port={port}",
         "--num-cpus=2", "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.2)
    try:
        yield f"127.0.0.1:{port}", env, Path(temp_dir)
    finally:
        if not kill_session(head, signal.SIGTERM, timeout=45):
            kill_session(head, signal.SIGKILL, timeout=15)
        head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_clean_runs_on_a_cluster_given_by_address(ray_head, tmp_path: Path) -> None:
    address, env, temp_dir = ray_head
    with ImageServer() as server:
        rows = [{"SAMPLE_ID": i, "URL": server.add(f"/{i}.jpg", jpeg(photo("astronaut")[i:i + 300, i:i + 300].copy())),
                 "TEXT": CAPTION} for i in range(6)]
        dump = write_laion(tmp_path / "dump.parquet", rows)
        recipe = write_recipe(tmp_path / "recipe.yaml")
        result = subprocess.run(cli_command("--recipe", str(recipe), "--input", str(dump), "--out",
                                            str(tmp_path / "out"), "--ray-address", address),
                                capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert sorted(r["status"] for r in manifest_rows(tmp_path / "out")) == ["kept"] * 6
    assert "units run 2" in result.stderr
    # the units ran in the cluster's workers: their logs live in the cluster's temp dir, not a new local Ray's
    worker_logs = "".join(p.read_text(errors="replace") for p in temp_dir.glob("session_*/logs/worker-*.out"))
    assert worker_logs.count(":task_name:process_unit") >= 2
