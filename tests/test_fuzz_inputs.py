"""Issue 8, proof: random bytes, truncated files, nested JSON and huge lines fed to the clean readers and to render
with --on-error skip. Every run must end without an uncaught exception, with every non-blank input line accounted
for (a row with a reason, or a manifest row), and within a stated memory bound (peak RSS of a subprocess)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import EXAMPLES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_clean_support import ROOT

from vlforge.pipelines.render import RenderOptions, process_unit, split_units
from vlforge.shards.manifest import read_manifests
from vlforge.sources.dumps.readers import list_inputs, plan_ranges, read_range
from vlforge.sources.dumps.text import MAX_LINE_BYTES

RENDER_LINE_CAP = 4096  # render's --max-line-bytes in these tests: huge lines stay cheap to generate
KEYS = st.sampled_from(["url", "caption", "image", "text", "e", "conversations", "from", "value", "lang"])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS | st.text(max_size=4), children,
                                                                       max_size=4),
    max_leaves=20)


def deep(depth: int) -> bytes:
    return b'{"e": ' + b"[" * depth + b"]" * depth + b"}"


def line_strategy(cap: int, records: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    """One input line of any kind; it may hold newlines itself (random bytes), which makes it several lines."""
    return st.one_of(
        records,
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.integers(900, 200_000).map(deep),
        st.binary(max_size=120),
        st.tuples(records, st.integers(0, 60)).map(lambda t: t[0][:t[1]]),  # truncated record
        st.integers(1, 64).map(lambda extra: b"h" * (cap + extra)),  # over the line cap
    )


def counted_lines(content: bytes, cap: int) -> list[int]:
    """1-based numbers of the lines that must become rows: not blank, or over the cap (never read, still a row)."""
    pieces = content.split(b"\n")
    if content.endswith(b"\n"):
        pieces.pop()
    return [n for n, piece in enumerate(pieces, start=1) if piece.strip() or len(piece) > cap]


CLEAN_RECORDS = st.fixed_dictionaries(
    {"url": st.text(max_size=30), "caption": st.text(max_size=30)},
    optional={"width": JSON_VALUES, "uid": JSON_VALUES}).map(lambda d: json.dumps(d).encode())
HEAD = b'{"url": "http://x.invalid/0", "caption": "a first, well-formed row"}\n'  # lets the schema be detected


def _rows(tables: Iterable[pa.Table]) -> list[dict]:
    return [row for t in tables for row in t.select(["row", "url", "caption", "read_error"]).to_pylist()]


def _read_ranges(path: Path, rows_per_unit: int) -> tuple[list[dict], list[dict]]:
    """The file's rows read whole, and read range by range as work units read them."""
    [f] = list_inputs([("fuzz", str(path))], {})
    return _rows(read_range(f)), _rows(t for rng in plan_ranges(f, rows_per_unit) for t in read_range(f, rng))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(lines=st.lists(line_strategy(MAX_LINE_BYTES, CLEAN_RECORDS), max_size=8), cut=st.integers(0, 200),
       trailing_newline=st.booleans())
def test_jsonl_reader_accounts_for_every_line(lines: list[bytes], cut: int, trailing_newline: bool) -> None:
    body = b"\n".join(lines) + (b"\n" if trailing_newline else b"")
    content = HEAD + body[:len(body) - cut] if cut < len(body) else HEAD  # a file cut off anywhere after the head
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.jsonl"
        path.write_bytes(content)
        whole, parts = _read_ranges(path, rows_per_unit=3)
    assert whole == parts
    assert [row["row"] for row in whole] == list(range(len(counted_lines(content, MAX_LINE_BYTES))))
    for row in whole:
        assert row["read_error"] is not None or (row["url"].strip() and row["caption"].strip())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(lines=st.lists(line_strategy(MAX_LINE_BYTES, st.binary(max_size=40).map(lambda b: b'http://x.invalid/,"' + b)),
                      max_size=8),
       tsv=st.booleans())
def test_csv_reader_reads_the_same_rows_whole_and_by_range(lines: list[bytes], tsv: bool) -> None:
    content = (b"url\tcaption\n" if tsv else b"url,caption\n") + b"\n".join(lines)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("fuzz.tsv" if tsv else "fuzz.csv")
        path.write_bytes(content)
        whole, parts = _read_ranges(path, rows_per_unit=2)
    assert whole == parts
    assert [row["row"] for row in whole] == list(range(len(whole)))
    # a record takes one line or more; a whitespace-only line is a record too (a `bad_row`), an empty one is not
    assert len(whole) <= len([line for line in content.split(b"\n") if line]) - 1


IMAGE_REFS = st.sampled_from(["images/rocket.jpg", "images/note.jpg", "../outside.jpg", "/etc/passwd", "images",
                              "images/missing.jpg", "", "images/rocket.jpg\x00"])
RENDER_RECORDS = st.one_of(
    st.fixed_dictionaries({"image": IMAGE_REFS | JSON_VALUES, "caption": st.text(max_size=30) | JSON_VALUES}),
    st.integers(0, 400).map(lambda n: {"conversations": [
        {"from": "user", "value": "<img>images/rocket.jpg</img>" * n + "What is shown?"},
        {"from": "assistant", "value": "A rocket."}]}),
).map(lambda d: json.dumps(d).encode())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example])
@given(lines=st.lists(line_strategy(RENDER_LINE_CAP, RENDER_RECORDS), max_size=8),
       task=st.sampled_from(["caption", "chat"]), cut=st.integers(0, 200))
def test_render_skip_records_every_line_in_the_manifest(lines: list[bytes], task: str, cut: int) -> None:
    content = b"\n".join(lines)
    content = content[:len(content) - cut] if cut < len(content) else content
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        shutil.copytree(EXAMPLES / "images", src / "images")
        path = src / f"{task}.jsonl"
        path.write_bytes(content)
        options = RenderOptions(task=task, on_error="skip", lines_per_unit=3, max_line_bytes=RENDER_LINE_CAP)
        out = Path(tmp) / "out"
        for unit in split_units(path, options, out):
            process_unit(unit)
        rows = read_manifests(out).to_pylist() if out.exists() else []
    assert sorted(r["line"] for r in rows) == counted_lines(content, RENDER_LINE_CAP)
    assert all(r["status"] == "kept" or r["reason"] for r in rows)


PEAK_RSS = """
import resource
{code}
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""
MEMORY_BOUND_MIB = 200  # peak RSS over an interpreter that imported the same modules


def peak_rss_mib(code: str) -> int:
    done = subprocess.run([sys.executable, "-c", PEAK_RSS.format(code=code)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return int(done.stdout.split()[-1])


def hostile_lines(cap: int) -> bytes:
    """The issue's worst lines: 200k-deep JSON, a line of 16x the cap, 300 image tags, random bytes, a cut record."""
    chat = {"conversations": [{"from": "user", "value": "<img>images/rocket.jpg</img>" * 300 + "?"},
                              {"from": "assistant", "value": "!"}]}
    return b"\n".join([
        b'{"url": "http://x.invalid/", "caption": "c", "image": "images/rocket.jpg"}', deep(200_000),
        b"z" * (16 * cap), json.dumps(chat).encode(), bytes(range(11, 256)) * 50, b'{"url": "http://x.inv',
        b'{"image": "images/rocket.jpg", "caption": "a rocket"}'])


def test_readers_and_render_stay_under_the_memory_bound(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(EXAMPLES / "images", src / "images")
    (src / "caption.jsonl").write_bytes(hostile_lines(RENDER_LINE_CAP * 256))  # a 16 MiB line: over render's 1 MiB
    (src / "dump.jsonl").write_bytes(hostile_lines(MAX_LINE_BYTES))  # a 64 MiB line
    imports = ("from pathlib import Path\nfrom vlforge.sources.dumps.readers import list_inputs, read_range\n"
               "from vlforge.pipelines.render import RenderOptions, process_unit, split_units\n")
    work = imports + f"""
[f] = list_inputs([('s', {str(src / 'dump.jsonl')!r})], {{}})
assert sum(t.num_rows for t in read_range(f)) == 7
options = RenderOptions(task='chat', on_error='skip', max_line_bytes={RENDER_LINE_CAP * 256})
for unit in split_units(Path({str(src / 'caption.jsonl')!r}), options, Path({str(tmp_path / 'out')!r})):
    assert process_unit(unit).read == 7
"""
    assert peak_rss_mib(work) - peak_rss_mib(imports) < MEMORY_BOUND_MIB


@pytest.mark.slow  # starts its own Ray
def test_render_cli_with_skip_survives_hostile_lines(tmp_path: Path) -> None:
    src = tmp_path / "in"
    shutil.copytree(EXAMPLES / "images", src / "images")
    (src / "caption.jsonl").write_bytes(hostile_lines(2 << 20))  # a 32 MiB line: over render's default 16 MiB
    done = subprocess.run([sys.executable, "-m", "vlforge.cli", "render", "--task", "caption", "--input",
                           str(src / "caption.jsonl"), "--out", str(tmp_path / "out"), "--on-error", "skip"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = read_manifests(tmp_path / "out").to_pylist()
    assert sorted(r["line"] for r in rows) == list(range(1, 8))
    assert [r["status"] for r in sorted(rows, key=lambda r: r["line"])] == ["kept"] + ["dropped"] * 5 + ["kept"]
