"""Raw rows of any reader to canonical Arrow batches: text and float columns, read errors per row, uid gaps
filled, source and position attached. Bad values become a row's `read_error`, never an exception."""

from __future__ import annotations

import math
import posixpath
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vlforge.sources.dumps.schemas import MAX_URL_CHARS, SCORE_COLUMNS, TEXT_COLUMNS, InputFile

_SURROGATE = re.compile("[\udc80-\udcff]")


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


def _finish(columns: dict[str, pa.Array], f: InputFile, rows: np.ndarray, errors: list[str | None],
            caption_optional: bool = False) -> pa.Table:
    """Fill uid gaps, flag rows without URL or caption (a missing caption column is empty captions when
    `caption_optional`), attach source/position/constants."""
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
            if caption_optional and name == "caption":
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


def from_arrow(table: pa.Table, f: InputFile, rows: np.ndarray, caption_optional: bool = False) -> pa.Table:
    errors: list[str | None] = [None] * table.num_rows
    columns: dict[str, pa.Array] = {}
    for canonical, column in f.columns.items():
        values = table[column]
        if canonical in ("width", "height", *SCORE_COLUMNS):
            columns[canonical] = _arrow_float(values)
        else:
            columns[canonical] = _arrow_text(values, errors)
    return _finish(columns, f, rows, errors, caption_optional)


def from_records(records: list[dict | None], f: InputFile, rows: np.ndarray,
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
