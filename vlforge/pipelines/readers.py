"""Streaming readers for raw image-text dumps: parquet, CSV/TSV, JSONL and img2dataset shards.

Every reader yields Arrow batches with the canonical columns: uid, url, caption (strings), width, height
(float64, NaN when unknown), source, the row's position (`file_index`, `row`), the score columns the dump
came with, and `read_error`, the reason a row could not be read (invalid UTF-8, malformed line, no URL).
Bad rows are yielded, never skipped, so every input row reaches the manifest.

Files are read in row ranges (`plan_ranges`, `read_range`): parquet by row groups, text formats by
byte offsets found in one streaming pass, so a work unit reads only its own rows and nothing is ever
loaded whole. The LAION, DataComp, COYO and img2dataset schemas are recognised from their columns;
any other table names its columns with `ColumnOverrides`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import posixpath
import re
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import BinaryIO

import fsspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlforge.shards.reader import MAX_MEMBER_BYTES, member_bytes

# Score columns a dump may bring, all read as float64.
SCORE_COLUMNS = ("clip_score", "clip_l14_score", "punsafe", "pwatermark", "nsfw_score", "watermark_score",
                 "aesthetic_score")
# Text columns a dump may bring besides url and caption.
TEXT_COLUMNS = ("nsfw", "license", "sha256", "status", "error_message", "key")
FIELDS = ("uid", "url", "caption", "width", "height", *SCORE_COLUMNS, *TEXT_COLUMNS)
TEXT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
MAX_TEXT_FIELD = 16 * 1024 * 1024  # a CSV field beyond this is a broken row (e.g. a quote never closed)
MAX_LINE_BYTES = 4 * 1024 * 1024  # a JSONL/CSV line beyond this is a row `line_too_long`, skipped unread
MAX_URL_CHARS = 4096
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class Schema:
    """Canonical name -> the dump's column, and constants every row of such a dump carries."""

    name: str
    columns: Mapping[str, str]
    signature: tuple[str, ...]  # columns whose presence identifies the schema
    constants: Mapping[str, str] = field(default_factory=dict)


SCHEMAS: dict[str, Schema] = {s.name: s for s in (
    Schema("img2dataset", {"uid": "key", "key": "key", "url": "url", "caption": "caption",
                           "width": "original_width", "height": "original_height", "sha256": "sha256",
                           "status": "status", "error_message": "error_message"},
           ("key", "url", "status", "error_message")),
    Schema("datacomp", {"uid": "uid", "url": "url", "caption": "text", "width": "original_width",
                        "height": "original_height", "clip_score": "clip_b32_similarity_score",
                        "clip_l14_score": "clip_l14_similarity_score", "sha256": "sha256"},
           ("uid", "url", "text", "clip_b32_similarity_score"), {"clip_model": "ViT-B-32"}),
    Schema("coyo", {"uid": "id", "url": "url", "caption": "text", "width": "width", "height": "height",
                    "clip_score": "clip_similarity_vitb32", "clip_l14_score": "clip_similarity_vitl14",
                    "nsfw_score": "nsfw_score_opennsfw2", "watermark_score": "watermark_score",
                    "aesthetic_score": "aesthetic_score_laion_v2"},
           ("id", "url", "text", "clip_similarity_vitb32"), {"clip_model": "ViT-B-32"}),
    Schema("laion", {"uid": "SAMPLE_ID", "url": "URL", "caption": "TEXT", "width": "WIDTH", "height": "HEIGHT",
                     "clip_score": "similarity", "nsfw": "NSFW", "license": "LICENSE", "punsafe": "punsafe",
                     "pwatermark": "pwatermark"},
           ("URL", "TEXT"), {"clip_model": "ViT-B-32"}),
    Schema("generic", {"uid": "uid", "url": "url", "caption": "caption", "width": "width", "height": "height"},
           ("url", "caption")),
)}


class InputError(ValueError):
    """An input file that cannot be read as a whole: names the file and what is wrong with it."""


@dataclass(frozen=True)
class InputFile:
    """One input file and how to read it. `columns` maps canonical names to the file's columns."""

    path: str
    format: str  # parquet | csv | tsv | jsonl | img2dataset
    source: str
    file_index: int
    schema: str
    columns: Mapping[str, str]
    constants: Mapping[str, str]
    names: tuple[str, ...] = ()  # text formats: the header, or the names given for a headerless file
    header: bool = True
    tar: str | None = None  # img2dataset: the shard's tar beside its parquet


@dataclass(frozen=True)
class RowRange:
    """Rows [row_start, row_start + row_count) of a file; text formats also know the byte offset of row_start."""

    row_start: int
    row_count: int
    byte_start: int = 0


@dataclass(frozen=True)
class ColumnOverrides:
    """Which column holds each canonical field, for tables no known schema describes (CLI --url-col ...)."""

    schema: str = "auto"
    columns: Mapping[str, str] = field(default_factory=dict)  # canonical -> column
    names: tuple[str, ...] = ()  # column names of a headerless CSV/TSV
    header: bool = True


# ---------------------------------------------------------------- schema detection


def detect_schema(names: list[str] | tuple[str, ...]) -> str:
    """The first known schema whose signature columns are all present."""
    present = set(names)
    for schema in SCHEMAS.values():
        if all(c in present for c in schema.signature):
            return schema.name
    raise InputError(
        f"no known schema matches columns {sorted(present)}; name the columns with --url-col and --caption-col "
        f"(or `columns:` in the recipe source)")


def resolve_columns(names: list[str] | tuple[str, ...], overrides: ColumnOverrides, where: str
                    ) -> tuple[str, dict[str, str], dict[str, str]]:
    """(schema name, canonical -> column for the columns this file has, constants); errors name the file."""
    if overrides.schema != "auto" and overrides.schema not in SCHEMAS:
        raise InputError(f"{where}: schema: unknown {overrides.schema!r}; expected auto or one of {sorted(SCHEMAS)}")
    unknown = sorted(set(overrides.columns) - set(FIELDS))
    if unknown:
        raise InputError(f"{where}: columns: unknown field(s) {unknown}; expected some of {list(FIELDS)}")
    present = set(names)
    for canonical, column in overrides.columns.items():
        if column not in present:
            raise InputError(f"{where}: no column {column!r} (given for field {canonical}); "
                             f"columns present: {sorted(present)}")
    if overrides.schema != "auto":
        schema = SCHEMAS[overrides.schema]
    elif {"url", "caption"} <= set(overrides.columns):
        schema = SCHEMAS["generic"]
    else:
        try:
            schema = SCHEMAS[detect_schema(names)]
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    mapping = {**schema.columns, **overrides.columns}
    for required in ("url",) if schema.name == "img2dataset" else ("url", "caption"):
        if mapping[required] not in present:
            raise InputError(f"{where}: missing column {mapping[required]!r} for field {required} "
                             f"(schema {schema.name}; columns present: {sorted(present)})")
    return schema.name, {k: v for k, v in mapping.items() if v in present}, dict(schema.constants)


# ---------------------------------------------------------------- listing inputs


def _format_of(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(".parquet"):
        return "parquet"
    return TEXT_FORMATS.get(posixpath.splitext(lower)[1])


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
        raise InputError(f"--input: {spec!r} holds no parquet, CSV, TSV or JSONL file")
    return [fs.unstrip_protocol(p) if "://" in spec else p for p in found]


def _read_header(path: str, fmt: str, overrides: ColumnOverrides) -> tuple[str, ...]:
    if fmt == "parquet":
        try:
            with fsspec.open(path, "rb") as f:
                return tuple(pq.ParquetFile(f).schema_arrow.names)
        except pa.ArrowException as exc:  # empty, truncated, or not parquet at all
            raise InputError(f"{path}: not a readable parquet file ({exc})") from None
    if fmt == "jsonl":
        return _jsonl_names(path)
    if overrides.names:
        return tuple(overrides.names)
    if not overrides.header:
        raise InputError(f"{path}: a headerless {fmt.upper()} needs `names:` (its column names)")
    with fsspec.open(path, "rb") as f:
        line, _ = next(bounded_lines(f), (b"", 0))
    if line is None:
        raise InputError(f"{path}:1: header line longer than {MAX_LINE_BYTES} bytes")
    try:
        return tuple(next(csv.reader([line.decode("utf-8-sig")], **_csv_dialect(fmt))))
    except (UnicodeDecodeError, StopIteration, csv.Error) as exc:
        raise InputError(f"{path}:1: cannot read the {fmt.upper()} header line ({exc})") from None


def _jsonl_names(path: str, probe_lines: int = 100) -> tuple[str, ...]:
    """Keys of the first parseable records: enough to detect a schema (rows lacking a key read it as null)."""
    names: dict[str, None] = {}
    with fsspec.open(path, "rb") as f:
        for _, (line, _) in zip(range(probe_lines), bounded_lines(f), strict=False):
            record = None if line is None else _json_record(line)[0]
            if record is not None:
                names.update(dict.fromkeys(record))
    return tuple(names)


def _check_text_columns(path: str, columns: Mapping[str, str]) -> None:
    """A nested column (list, struct, map) cannot be read as a URL or caption: refused before any work."""
    with fsspec.open(path, "rb") as f:
        schema = pq.ParquetFile(f).schema_arrow
    for canonical, column in columns.items():
        kind = schema.field(column).type
        if pa.types.is_nested(kind):
            raise InputError(f"{path}: column {column!r} (field {canonical}) is {kind}, not a text or number column")


def _img2dataset_tar(path: str) -> str | None:
    """The tar beside an img2dataset parquet; without one, its rows are URLs to download again."""
    tar = path[: -len(".parquet")] + ".tar"
    fs, local = fsspec.core.url_to_fs(tar)
    return tar if fs.exists(local) else None


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
                raise InputError(f"{path}: unsupported input format (expected .parquet, .csv, .tsv, .jsonl)")
            names = _read_header(path, fmt, over)
            if not names:
                raise InputError(f"{path}: no columns found (an empty file, or no header line or JSON object)")
            schema, columns, constants = resolve_columns(names, over, path)
            if fmt == "parquet":
                _check_text_columns(path, columns)
            tar = _img2dataset_tar(path) if fmt == "parquet" and schema == "img2dataset" else None
            files.append(InputFile(path=path, format="img2dataset" if tar else fmt, source=source,
                                   file_index=len(files), schema=schema, columns=columns, constants=constants,
                                   names=names, header=over.header and not over.names, tar=tar))
    return files


# ---------------------------------------------------------------- canonical batches


def _text_values(values: list, errors: list[str | None]) -> list[str | None]:
    """Strings as given, numbers as text (JSON ids); invalid UTF-8 and nested values become null."""
    out: list[str | None] = []
    for i, value in enumerate(values):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        elif isinstance(value, str) and _SURROGATE.search(value):
            value = None
            errors[i] = errors[i] or "invalid_utf8"
        out.append(value if isinstance(value, str) else None)
    return out


def _float(value: object) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _arrow_text(column: pa.ChunkedArray | pa.Array, errors: list[str | None]) -> pa.Array:
    """Any column as strings; invalid UTF-8 (parquet does not enforce it) becomes null + 'invalid_utf8'."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        try:
            column.validate(full=True)
            return column.cast(pa.string())
        except pa.ArrowInvalid:
            column = column.view(pa.binary() if pa.types.is_string(column.type) else pa.large_binary())
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        decoded = []
        for i, raw in enumerate(column.to_pylist()):
            try:
                decoded.append(None if raw is None else raw.decode("utf-8"))
            except UnicodeDecodeError:
                decoded.append(None)
                errors[i] = errors[i] or "invalid_utf8"
        return pa.array(decoded, pa.string())
    return pc.cast(column, pa.string())


def _arrow_float(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return pc.cast(column, pa.float64())
    return pa.array([_float(v) for v in column.to_pylist()], pa.float64())


def _finish(columns: dict[str, pa.Array], f: InputFile, rows: np.ndarray, errors: list[str | None]) -> pa.Table:
    """Fill uid gaps, flag rows without URL or caption, attach source/position/constants."""
    n = len(rows)
    uid = columns.get("uid")
    if uid is None or uid.null_count:
        base = posixpath.basename(f.path)
        given = uid.to_pylist() if uid is not None else [None] * n
        filled = [u if u is not None else f"{base}:{r}" for u, r in zip(given, rows.tolist(), strict=True)]
        columns["uid"] = pa.array(filled, pa.string())
    for name, reason in (("url", "missing_url"), ("caption", "missing_caption")):
        values = columns.get(name)
        if values is None:
            if f.format == "img2dataset" and name == "caption":
                columns[name] = pa.array([""] * n, pa.string())
                continue
            values = pa.nulls(n, pa.string())
            columns[name] = values
        empty = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), True).to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(empty):
            errors[i] = errors[i] or reason
    too_long = pc.fill_null(pc.greater(pc.utf8_length(columns["url"]), MAX_URL_CHARS), False)
    for i in np.flatnonzero(too_long.to_numpy(zero_copy_only=False)):
        errors[i] = errors[i] or "url_too_long"
    for name in ("width", "height"):
        columns.setdefault(name, pa.nulls(n, pa.float64()))
    out = {
        "uid": columns["uid"], "url": columns["url"], "caption": columns["caption"],
        "width": columns["width"], "height": columns["height"],
        "source": pa.array([f.source] * n, pa.string()),
        "file_index": pa.array(np.full(n, f.file_index, dtype=np.int32)),
        "row": pa.array(rows.astype(np.int64)),
        "read_error": pa.array(errors, pa.string()),
    }
    for name in (*SCORE_COLUMNS, *TEXT_COLUMNS):
        if name in columns:
            out[name] = columns[name]
    for name, value in f.constants.items():
        out[name] = pa.array([value] * n, pa.string())
    return pa.table(out)


def _from_arrow(table: pa.Table, f: InputFile, rows: np.ndarray) -> pa.Table:
    errors: list[str | None] = [None] * table.num_rows
    columns: dict[str, pa.Array] = {}
    for canonical, column in f.columns.items():
        values = table[column]
        if canonical in ("width", "height", *SCORE_COLUMNS):
            columns[canonical] = _arrow_float(values)
        else:
            columns[canonical] = _arrow_text(values, errors)
    return _finish(columns, f, rows, errors)


def _from_records(records: list[dict | None], f: InputFile, rows: np.ndarray,
                  errors: list[str | None]) -> pa.Table:
    """Rows parsed from text (None where the line could not be parsed; its reason is already in `errors`)."""
    columns: dict[str, pa.Array] = {}
    for canonical, column in f.columns.items():
        values = [None if r is None else r.get(column) for r in records]
        if canonical in ("width", "height", *SCORE_COLUMNS):
            columns[canonical] = pa.array([_float(v) for v in values], pa.float64())
        else:
            columns[canonical] = pa.array(_text_values(values, errors), pa.string())
    return _finish(columns, f, rows, errors)


# ---------------------------------------------------------------- parquet


def _parquet_batches(f: InputFile, rng: RowRange | None, columns: list[str] | None,
                     batch_size: int) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Raw batches of the rows in `rng` with their row numbers; corrupt data is an InputError naming the rows."""
    try:
        yield from _parquet_row_groups(f, rng, columns, batch_size)
    except (pa.ArrowException, OSError) as exc:
        where = "" if rng is None else f" rows {rng.row_start}..{rng.row_start + rng.row_count - 1}"
        raise InputError(f"{f.path}:{where} unreadable parquet data ({exc})") from None


def _parquet_row_groups(f: InputFile, rng: RowRange | None, columns: list[str] | None,
                        batch_size: int) -> Iterator[tuple[pa.Table, np.ndarray]]:
    """Raw batches of the rows in `rng` with their row numbers, reading only the row groups that overlap it."""
    with fsspec.open(f.path, "rb") as handle:
        pf = pq.ParquetFile(handle)
        start = 0 if rng is None else rng.row_start
        stop = pf.metadata.num_rows if rng is None else rng.row_start + rng.row_count
        groups, first_row, offset = [], None, 0
        for g in range(pf.num_row_groups):
            size = pf.metadata.row_group(g).num_rows
            if offset < stop and offset + size > start:
                groups.append(g)
                first_row = offset if first_row is None else first_row
            offset += size
        if not groups:
            return
        row = first_row
        for batch in pf.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns):
            lo, hi = max(start - row, 0), min(stop - row, batch.num_rows)
            if hi > lo:
                yield pa.Table.from_batches([batch.slice(lo, hi - lo)]), np.arange(row + lo, row + hi)
            row += batch.num_rows
            if row >= stop:
                return


def _parquet_ranges(f: InputFile, rows_per_unit: int) -> list[RowRange]:
    with fsspec.open(f.path, "rb") as handle:
        total = pq.ParquetFile(handle).metadata.num_rows
    return [RowRange(s, min(rows_per_unit, total - s)) for s in range(0, total, rows_per_unit)]


# ---------------------------------------------------------------- CSV / TSV / JSONL


def _csv_dialect(fmt: str) -> dict:
    return {"delimiter": "\t" if fmt == "tsv" else ",", "strict": True}


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


def _text_records(f: InputFile, byte_start: int, parse: bool = True
                  ) -> Iterator[tuple[dict | None, str | None, int]]:
    """(record or None, reason when None, byte offset after the record) from `byte_start` on.

    Blank lines are not records. CSV records may span lines (quoted newlines); a malformed one becomes
    ('bad_row') and reading goes on with the next line; a line over MAX_LINE_BYTES is one record
    ('line_too_long'). `parse=False` only finds JSONL record boundaries.
    """
    csv.field_size_limit(MAX_TEXT_FIELD)
    with fsspec.open(f.path, "rb") as handle:
        handle.seek(byte_start)
        if f.format == "jsonl":
            offset = byte_start
            for raw, size in bounded_lines(handle):
                offset += size
                if raw is None:
                    yield None, "line_too_long", offset
                elif raw.strip():
                    yield (*(_json_record(raw) if parse else (None, None)), offset)
            return
        lines = _OffsetLines(handle, byte_start)
        reader = csv.reader(lines, **_csv_dialect(f.format))
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
                reader = csv.reader(lines, **_csv_dialect(f.format))  # forget a record the long line cut
                continue
            if not values:
                continue
            if len(values) != len(f.names):
                yield None, "bad_row", lines.offset
            else:
                yield dict(zip(f.names, values, strict=True)), None, lines.offset


def _json_record(raw: bytes) -> tuple[dict | None, str | None]:
    """A JSON object, or the reason there is none. Invalid UTF-8 survives as surrogates, caught per field.

    Nesting deeper than the interpreter's recursion limit is a bad row ('json_too_deep'), not a crash.
    """
    try:
        record = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except ValueError:
        return None, "bad_row"
    except RecursionError:
        return None, "json_too_deep"
    return (record, None) if isinstance(record, dict) else (None, "bad_row")


def _data_start(f: InputFile) -> int:
    """Byte offset of the first data row: after the header line of a CSV/TSV that has one."""
    if f.format == "jsonl" or not f.header:
        return 0
    with fsspec.open(f.path, "rb") as handle:
        return next(bounded_lines(handle), (b"", 0))[1]


def _text_ranges(f: InputFile, rows_per_unit: int) -> list[RowRange]:
    ranges, row, start, byte_start = [], 0, 0, _data_start(f)
    for _, _, offset in _text_records(f, byte_start, parse=False):
        row += 1
        if row - start == rows_per_unit:
            ranges.append(RowRange(start, rows_per_unit, byte_start))
            start, byte_start = row, offset
    if row > start:
        ranges.append(RowRange(start, row - start, byte_start))
    return ranges


def _text_batches(f: InputFile, rng: RowRange | None, batch_size: int) -> Iterator[pa.Table]:
    rng = rng or RowRange(0, math.inf, _data_start(f))
    records: list[dict | None] = []
    errors: list[str | None] = []
    row = rng.row_start
    for record, reason, _ in _text_records(f, rng.byte_start):
        records.append(record)
        errors.append(reason)
        if len(records) == batch_size or row - rng.row_start + 1 == rng.row_count:
            yield _from_records(records, f, np.arange(row - len(records) + 1, row + 1), errors)
            records, errors = [], []
        row += 1
        if row - rng.row_start == rng.row_count:
            return
    if records:
        yield _from_records(records, f, np.arange(row - len(records), row), errors)


# ---------------------------------------------------------------- img2dataset shards


def iter_shard_images(tar_path: str, keys: list[str], max_bytes: int = MAX_MEMBER_BYTES
                      ) -> Iterator[tuple[str, bytes | None]]:
    """(key, image bytes) of the given keys from an img2dataset tar (members `KEY.jpg`, `KEY.png`, ...), streamed
    one member at a time; None for a member over `max_bytes`, which is never read."""
    wanted = set(keys)
    with fsspec.open(tar_path, "rb") as handle, tarfile.open(fileobj=handle, mode="r|") as tar:
        for member in tar:
            key, _, ext = member.name.rpartition("/")[2].partition(".")
            if key in wanted and ext.lower() in IMAGE_EXTENSIONS and member.isfile():
                yield key, member_bytes(tar, member, max_bytes)
            tar.members = []


def read_shard_images(tar_path: str, keys: list[str], max_bytes: int = MAX_MEMBER_BYTES) -> dict[str, bytes | None]:
    """iter_shard_images as a mapping (for a few keys: every image is held)."""
    return dict(iter_shard_images(tar_path, keys, max_bytes))


# ---------------------------------------------------------------- public entry points


def plan_ranges(f: InputFile, rows_per_unit: int) -> list[RowRange]:
    """Split a file into consecutive row ranges of `rows_per_unit` rows (the last may be shorter)."""
    if rows_per_unit < 1:
        raise ValueError("rows_per_unit must be >= 1")
    if f.format in ("parquet", "img2dataset"):
        return _parquet_ranges(f, rows_per_unit)
    return _text_ranges(f, rows_per_unit)


def read_range(f: InputFile, rng: RowRange | None = None, batch_size: int = 8192) -> Iterator[pa.Table]:
    """Canonical batches of the rows in `rng` (the whole file when None), in row order."""
    if f.format in ("parquet", "img2dataset"):
        columns = sorted(set(f.columns.values()))
        for table, rows in _parquet_batches(f, rng, columns, batch_size):
            yield _from_arrow(table, f, rows)
    else:
        yield from _text_batches(f, rng, batch_size)
