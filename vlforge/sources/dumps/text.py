"""Line-based dumps read by byte offsets: one streaming pass finds where each unit's rows start, so a unit
reads only its own lines. Every line is bounded (MAX_LINE_BYTES) and never held whole beyond it; a malformed
record is a row with a reason (`bad_row`, `line_too_long`, `json_too_deep`), never a stop.

`LineReader` holds the shared ranges and batches; a format gives only its records (`CsvReader` here for CSV
and TSV, `jsonl.JsonlReader`)."""

from __future__ import annotations

import csv
import io
import math
from abc import abstractmethod
from collections.abc import Iterable, Iterator
from typing import BinaryIO

import fsspec
import numpy as np
import pyarrow as pa

from vlforge.sources.dumps.base import Reader
from vlforge.sources.dumps.canonical import from_records
from vlforge.sources.dumps.schemas import ColumnOverrides, InputError, InputFile, RowRange

MAX_TEXT_FIELD = 16 * 1024 * 1024  # a CSV field beyond this is a broken row (e.g. a quote never closed)
MAX_LINE_BYTES = 4 * 1024 * 1024  # a JSONL/CSV line beyond this is a row `line_too_long`, skipped unread

Record = tuple[dict | None, str | None, int]  # (record or None, reason when None, byte offset after it)


class LineReader(Reader):
    """A format of records in lines: ranges are byte offsets found in one pass, batches parse only their lines."""

    @abstractmethod
    def records(self, f: InputFile, byte_start: int, parse: bool = True) -> Iterator[Record]:
        """The file's records from `byte_start` on; blank lines are not records, a line over MAX_LINE_BYTES is
        one ('line_too_long'). `parse=False` may skip parsing where boundaries do not need it."""

    def data_start(self, f: InputFile) -> int:
        """Byte offset of the first data row."""
        return 0

    def ranges(self, f: InputFile, rows_per_unit: int) -> list[RowRange]:
        ranges, row, start, byte_start = [], 0, 0, self.data_start(f)
        for _, _, offset in self.records(f, byte_start, parse=False):
            row += 1
            if row - start == rows_per_unit:
                ranges.append(RowRange(start, rows_per_unit, byte_start))
                start, byte_start = row, offset
        if row > start:
            ranges.append(RowRange(start, row - start, byte_start))
        return ranges

    def batches(self, f: InputFile, rng: RowRange | None, batch_size: int) -> Iterator[pa.Table]:
        rng = rng or RowRange(0, math.inf, self.data_start(f))
        records: list[dict | None] = []
        errors: list[str | None] = []
        row = rng.row_start
        for record, reason, _ in self.records(f, rng.byte_start):
            records.append(record)
            errors.append(reason)
            if len(records) == batch_size or row - rng.row_start + 1 == rng.row_count:
                yield from_records(records, f, np.arange(row - len(records) + 1, row + 1), errors)
                records, errors = [], []
            row += 1
            if row - rng.row_start == rng.row_count:
                return
        if records:
            yield from_records(records, f, np.arange(row - len(records), row), errors)


class CsvReader(LineReader):
    """Delimiter-separated values (CSV, TSV): a header line or given names; quoted fields may span lines."""

    def __init__(self, fmt: str, extensions: tuple[str, ...], delimiter: str) -> None:
        self.format, self.extensions, self.delimiter = fmt, extensions, delimiter

    def _csv(self, lines: Iterable[str]) -> Iterator[list[str]]:
        return csv.reader(lines, delimiter=self.delimiter, strict=True)

    def header(self, path: str, overrides: ColumnOverrides) -> tuple[str, ...]:
        if overrides.names:
            return tuple(overrides.names)
        if not overrides.header:
            raise InputError(f"{path}: a headerless {self.format.upper()} needs `names:` (its column names)")
        with fsspec.open(path, "rb") as f:
            line, _ = next(bounded_lines(f), (b"", 0))
        if line is None:
            raise InputError(f"{path}:1: header line longer than {MAX_LINE_BYTES} bytes")
        try:
            return tuple(next(self._csv([line.decode("utf-8-sig")])))
        except (UnicodeDecodeError, StopIteration, csv.Error) as exc:
            raise InputError(f"{path}:1: cannot read the {self.format.upper()} header line ({exc})") from None

    def data_start(self, f: InputFile) -> int:
        """After the header line, for a file that has one."""
        if not f.header:
            return 0
        with fsspec.open(f.path, "rb") as handle:
            return next(bounded_lines(handle), (b"", 0))[1]

    def records(self, f: InputFile, byte_start: int, parse: bool = True) -> Iterator[Record]:
        """A malformed record (or one with the wrong number of fields) is 'bad_row'; reading goes on."""
        csv.field_size_limit(MAX_TEXT_FIELD)
        with fsspec.open(f.path, "rb") as handle:
            handle.seek(byte_start)
            lines = _OffsetLines(handle, byte_start)
            reader = self._csv(lines)
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error:
                    yield None, "bad_row", lines.offset
                    continue
                except _LineTooLong:
                    yield None, "line_too_long", lines.offset
                    reader = self._csv(lines)  # forget a record the long line cut
                    continue
                if not values:
                    continue
                if len(values) != len(f.names):
                    yield None, "bad_row", lines.offset
                else:
                    yield dict(zip(f.names, values, strict=True)), None, lines.offset


class _LineTooLong(Exception):
    """Raised into the csv module's loop by _OffsetLines; the reader is then restarted after the line."""


def bounded_lines(handle: BinaryIO, max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[bytes | None, int]]:
    """(line, bytes it took) for each line of a binary stream from its position on; None for a line over
    `max_bytes`, which is skipped a MiB at a time and never held whole. Reads ahead: the stream's own
    position afterwards means nothing, the sizes do."""
    reader = io.BufferedReader(handle, 1 << 20)  # fsspec's remote files have a readline() without a size
    while raw := reader.readline(max_bytes + 1):
        size = len(raw)
        if size <= max_bytes:
            yield raw, size
            continue
        while raw and not raw.endswith(b"\n"):
            raw = reader.readline(1 << 20)
            size += len(raw)
        yield None, size


class _OffsetLines:
    """Lines of a binary stream decoded for the csv module, remembering the byte offset reached."""

    def __init__(self, handle: BinaryIO, offset: int) -> None:
        self.lines, self.offset = bounded_lines(handle), offset

    def __iter__(self) -> _OffsetLines:
        return self

    def __next__(self) -> str:
        raw, size = next(self.lines)
        self.offset += size
        if raw is None:
            raise _LineTooLong
        return raw.decode("utf-8", errors="surrogateescape")
