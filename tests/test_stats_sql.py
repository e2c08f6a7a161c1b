"""`vlforge sql`: queries over the `samples` and `metrics` views, and DuckDB's own shell on them."""

import os
import shlex
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from stats_support import clean_like, manifest_table, metrics_rows, run_cli, train_dir

BIN = Path(sys.executable).parent
VLFORGE = str(BIN / "vlforge")


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sql")
    return clean_like(tmp / "clean", files=3, rows_per_file=100), train_dir(tmp / "run")


def _rows(text: str) -> list[list[str]]:
    """Data lines of a printed table (after the dashes, before the row count)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if set(line.replace(" ", "")) == {"-"}) + 1
    return [line.split() for line in lines[start:] if not line.startswith("(")]


def test_query_over_samples_and_metrics(dirs, capsys):
    clean, run = dirs
    code, out, _ = run_cli(capsys, "sql", str(clean), str(run),
                           "SELECT source, count(*) AS kept FROM samples WHERE status = 'kept' GROUP BY source "
                           "ORDER BY source")
    assert code == 0
    expected = Counter(r["source"] for r in manifest_table(clean).to_pylist() if r["status"] == "kept")
    assert {s: int(n.replace(",", "")) for s, n in _rows(out)} == expected
    assert out.rstrip().endswith(f"({len(expected)} rows)")
    code, out, _ = run_cli(capsys, "sql", str(run), "SELECT count(*) AS n, max(step) AS last FROM metrics "
                           "WHERE split = 'eval'")
    evals = [r for r in metrics_rows() if "eval" in r]
    assert _rows(out) == [[str(len(evals)), str(evals[-1]["step"])]]


def test_long_results_are_cut_with_a_note(dirs, capsys):
    code, out, _ = run_cli(capsys, "sql", str(dirs[0]), "SELECT uid FROM samples;", "--max-rows", "5")
    assert code == 0 and len(_rows(out)) == 5
    assert "(5 rows; more not shown: add LIMIT or raise --max-rows)" in out


@pytest.mark.skipif(shutil.which("duckdb", path=str(BIN)) is None, reason="DuckDB's shell (pip duckdb-cli) missing")
def test_without_a_query_the_duckdb_shell_opens_on_the_views(dirs):
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run([VLFORGE, "sql", str(dirs[0])], input="SELECT count(*) AS n FROM samples;\n",
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{manifest_table(dirs[0]).num_rows}" in done.stdout


def test_without_duckdb_it_prints_a_command_that_works(dirs, tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {**os.environ, "PATH": str(empty)}
    done = subprocess.run([VLFORGE, "sql", str(dirs[0])], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("No `duckdb` command on PATH. Install DuckDB's shell (`pip install duckdb-cli`)")
    command = next(line.strip() for line in done.stdout.splitlines() if line.strip().startswith("duckdb -cmd"))
    if shutil.which("duckdb", path=str(BIN)) is None:
        pytest.skip("DuckDB's shell (pip duckdb-cli) missing: the printed command was not run")
    argv = [str(BIN / "duckdb"), *shlex.split(command)[1:]]
    ran = subprocess.run(argv, input="SELECT count(*) FROM samples;\n", capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and f"{manifest_table(dirs[0]).num_rows}" in ran.stdout
