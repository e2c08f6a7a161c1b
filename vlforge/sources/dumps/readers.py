"""The dump readers behind one registry: list input files with their schema and reader, cut them into row
ranges, read a range as canonical batches.

Every reader yields Arrow batches with the canonical columns: uid, url, caption (strings), width, height
(float64, NaN when unknown), source, the row's position (`file_index`, `row`), the score columns the dump
came with, and `read_error`, the reason a row could not be read (invalid UTF-8, malformed line, no URL).
Bad rows are yielded, never skipped, so every input row reaches the manifest. Nothing is ever loaded whole.

A new format is one `Reader` subclass in its own module plus one entry in READERS (claimed in order:
img2dataset before the plain parquet it also is).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator, Mapping

import fsspec
import pyarrow as pa

from vlforge.sources.dumps.base import Reader
from vlforge.sources.dumps.img2dataset import Img2datasetReader
from vlforge.sources.dumps.jsonl import JsonlReader
from vlforge.sources.dumps.parquet import ParquetReader
from vlforge.sources.dumps.schemas import ColumnOverrides, InputError, InputFile, RowRange, resolve_columns
from vlforge.sources.dumps.text import CsvReader

READERS: dict[str, Reader] = {r.format: r for r in (
    Img2datasetReader(), ParquetReader(), CsvReader("csv", (".csv",), ","), CsvReader("tsv", (".tsv",), "\t"),
    JsonlReader(),
)}


KNOWN_EXTENSIONS = ", ".join(sorted({ext for r in READERS.values() for ext in r.extensions}))


def _format_of(path: str) -> str | None:
    """The reader whose extension the path has (img2dataset shards are parquet until their schema is known)."""
    return next((r.format for r in READERS.values() if r.claims(path, "")), None)


def _expand(spec: str) -> list[str]:
    """A file, a directory (its supported files, recursively, sorted) or a glob; fsspec URLs keep their protocol."""
    fs, path = fsspec.core.url_to_fs(spec)
    if any(ch in path for ch in "*?["):
        found = sorted(fs.glob(path))
    elif fs.isdir(path):
        found = sorted(p for p in fs.find(path)
                       if _format_of(p) and not posixpath.basename(p).startswith((".", "_")))
    elif fs.exists(path):
        return [spec]
    else:
        raise InputError(f"--input: no such file or directory {spec!r}")
    if not found:
        raise InputError(f"--input: {spec!r} holds no input file ({KNOWN_EXTENSIONS})")
    return [fs.unstrip_protocol(p) if "://" in spec else p for p in found]


def reader_of(f: InputFile) -> Reader:
    return READERS[f.format]


def list_inputs(inputs: list[tuple[str, str]], overrides: Mapping[str, ColumnOverrides]) -> list[InputFile]:
    """Expand (source, path spec) pairs into files with their schema resolved, before any work starts.

    `overrides` is per source. File indices follow the order of `inputs`, then sorted paths.
    """
    files: list[InputFile] = []
    for source, spec in inputs:
        over = overrides.get(source, ColumnOverrides())
        for path in _expand(spec):
            fmt = _format_of(path)
            if fmt is None:
                raise InputError(f"{path}: unsupported input format (expected {KNOWN_EXTENSIONS})")
            names = READERS[fmt].header(path, over)
            if not names:
                raise InputError(f"{path}: no columns found (an empty file, or no header line or JSON object)")
            schema, columns, constants = resolve_columns(names, over, path)
            reader = next(r for r in READERS.values() if r.claims(path, schema))
            reader.check(path, columns)
            files.append(InputFile(path=path, format=reader.format, source=source, file_index=len(files),
                                   schema=schema, columns=columns, constants=constants, names=names,
                                   header=over.header and not over.names, companion=reader.companion(path)))
    return files


def plan_ranges(f: InputFile, rows_per_unit: int) -> list[RowRange]:
    """Split a file into consecutive row ranges of `rows_per_unit` rows (the last may be shorter)."""
    if rows_per_unit < 1:
        raise ValueError("rows_per_unit must be >= 1")
    return reader_of(f).ranges(f, rows_per_unit)


def read_range(f: InputFile, rng: RowRange | None = None, batch_size: int = 8192) -> Iterator[pa.Table]:
    """Canonical batches of the rows in `rng` (the whole file when None), in row order."""
    yield from reader_of(f).batches(f, rng, batch_size)
