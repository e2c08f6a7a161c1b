"""Bad input to `stats`/`sql`/`report`: one line naming the problem, exit 2, never a traceback."""

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from stats_support import clean_like, run_cli, train_dir

from vlforge.shards.manifest import MANIFEST_DIR, list_manifests, write_manifest


def assert_refused(capsys, command: str, *args: str, says: str) -> str:
    code, out, err = run_cli(capsys, command, *args)
    assert code == 2, (out, err)
    assert err.startswith(f"vlforge {command}: error: ") and says in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.fixture
def clean_dir(tmp_path):
    return clean_like(tmp_path / "clean", files=2, rows_per_file=50)


@pytest.mark.parametrize("command", ["stats", "report"])
def test_empty_missing_and_repeated_directories(tmp_path, capsys, command, clean_dir):
    (tmp_path / "empty").mkdir()
    extra = ("--out", str(tmp_path / "r.html")) if command == "report" else ()
    assert_refused(capsys, command, str(tmp_path / "empty"), *extra, says="empty: no manifests")
    assert_refused(capsys, command, str(tmp_path / "nope"), *extra, says="nope: no such directory")
    assert_refused(capsys, command, str(clean_dir), str(clean_dir), *extra, says="given twice")
    assert not (tmp_path / "r.html").exists()


def test_corrupt_and_foreign_parquet_files_are_named(clean_dir, capsys):
    victim = list_manifests(clean_dir)[0]
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])  # a torn copy
    assert_refused(capsys, "stats", str(clean_dir), says=f"{victim}: not a readable parquet file")
    victim.write_bytes(b"not parquet at all")
    assert_refused(capsys, "sql", str(clean_dir), "SELECT 1", says=f"{victim}: not a readable parquet file")
    pq.write_table(pa.table({"a": [1, 2]}), victim)
    assert_refused(capsys, "stats", str(clean_dir), says=f"{victim}: not a vlforge manifest (no column uid, source")


def test_corrupt_data_pages_fail_in_the_query_with_a_message(clean_dir, capsys):
    victim = list_manifests(clean_dir)[0]
    data = bytearray(victim.read_bytes())
    meta = pq.ParquetFile(victim).metadata
    start = meta.row_group(0).column(meta.schema.names.index("status")).data_page_offset
    data[start: start + 64] = b"\xff" * 64  # page header and values of `status` destroyed, footer intact
    victim.write_bytes(bytes(data))
    for command, *args in (("stats",), ("sql", "SELECT count(*) FROM samples WHERE status = 'kept'"),
                            ("report", "--out", str(clean_dir.parent / "r.html"))):
        assert_refused(capsys, command, str(clean_dir), *args, says=f"{victim}: unreadable parquet data")


def test_different_pipelines_in_one_directory(clean_dir, tmp_path, capsys):
    write_manifest(clean_dir, "synthdog-en-00000000", [
        {"uid": "s1", "source": "synthdog-en", "status": "kept", "lines": 3, "chars": 20, "background": "paper"}])
    err = assert_refused(capsys, "stats", str(clean_dir), says="manifests of different pipelines in one directory")
    assert "clean: u0.manifest.parquet" in err and "synthdog: synthdog-en-00000000.manifest.parquet" in err


def test_empty_manifests_and_unknown_csv_table(tmp_path, capsys, clean_dir):
    (tmp_path / "nothing").mkdir()
    write_manifest(tmp_path / "nothing", "u0", [])
    assert_refused(capsys, "stats", str(tmp_path / "nothing"), says="no rows")
    assert_refused(capsys, "stats", str(clean_dir), "--csv", "nonsense", says="no table 'nonsense'")


def test_bad_sql_and_bad_metrics(clean_dir, tmp_path, capsys):
    assert_refused(capsys, "sql", str(clean_dir), "SELECT nonsense FROM samples", says='"nonsense" not found')
    assert_refused(capsys, "sql", str(clean_dir), "SELEKT 1 FROM samples", says="syntax error")
    run = train_dir(tmp_path / "run")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 21, "loss": \n')  # torn last line of a killed run
    assert_refused(capsys, "stats", str(run), says="metrics.jsonl")


def test_report_never_replaces_a_file_it_did_not_write(clean_dir, tmp_path, capsys):
    mine = tmp_path / "notes.html"
    mine.write_text("<html>my notes</html>")
    assert_refused(capsys, "report", str(clean_dir), "--out", str(mine), says="not a vlforge report")
    assert mine.read_text() == "<html>my notes</html>"
    assert_refused(capsys, "report", str(clean_dir), "--out", str(tmp_path), says="is a directory")


def test_installed_command_prints_one_line(tmp_path):
    """The console script itself, in a fresh process."""
    (tmp_path / "empty" / MANIFEST_DIR).mkdir(parents=True)
    vlforge = shutil.which("vlforge", path=str(Path(sys.executable).parent))
    done = subprocess.run([vlforge, "stats", str(tmp_path / "empty")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (f"vlforge stats: error: {tmp_path / 'empty'}: no manifests ({MANIFEST_DIR}/*.manifest"
                           ".parquet), no metrics.jsonl and no scores.json with samples.parquet; is it the --out "
                           "directory of a vlforge command?\n")


def test_column_types_that_differ_between_units(tmp_path, capsys):
    """A unit whose values Arrow could not unify stores them as JSON text; numbers in it still count."""
    (tmp_path / "clean").mkdir()
    base = {"source": "s", "status": "kept", "url": "u", "row": 1}
    write_manifest(tmp_path / "clean", "a", [{"uid": "1", "clip_score": 0.3, "width": 10, "height": 20, **base}])
    write_manifest(tmp_path / "clean", "b", [{"uid": "2", "clip_score": [1, "x"], "width": "12", **base},
                                             {"uid": "3", "clip_score": 0.5, "width": 5, "height": 4, **base}])
    assert pq.read_schema(list_manifests(tmp_path / "clean")[1]).field("clip_score").type == pa.string()
    code, out, err = run_cli(capsys, "stats", str(tmp_path / "clean"), "--csv", "distributions")
    assert code == 0, err
    rows = {r.split(",")[3]: r.split(",")[4:] for r in out.splitlines()[1:]}
    assert rows["clip_score"][0] == "2" and float(rows["clip_score"][-1]) == pytest.approx(0.4)
    assert rows["aspect_ratio"][0] == "2" and float(rows["aspect_ratio"][-1]) == pytest.approx((2 + 1.25) / 2)
