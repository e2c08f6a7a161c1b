"""JSON Lines dumps: one JSON object per line, read by byte offsets like every `LineReader`."""

from __future__ import annotations

from collections.abc import Iterator

import fsspec

from vlforge.formats.jsontext import JsonTextError, parse_json
from vlforge.sources.dumps.schemas import ColumnOverrides, InputFile
from vlforge.sources.dumps.text import LineReader, Record, bounded_lines

PROBE_LINES = 100  # records whose keys make the header


class JsonlReader(LineReader):
    """Column names are the keys of the first records; a line that is not a JSON object is a bad row."""

    format = "jsonl"
    extensions = (".jsonl", ".ndjson")

    def header(self, path: str, overrides: ColumnOverrides) -> tuple[str, ...]:
        """Keys of the first parseable records: enough to detect a schema (rows lacking a key read it as null)."""
        names: dict[str, None] = {}
        with fsspec.open(path, "rb") as f:
            for _, (line, _) in zip(range(PROBE_LINES), bounded_lines(f), strict=False):
                record = None if line is None else json_record(line)[0]
                if record is not None:
                    names.update(dict.fromkeys(record))
        return tuple(names)

    def records(self, f: InputFile, byte_start: int, parse: bool = True) -> Iterator[Record]:
        """One record per non-blank line; `parse=False` finds only the boundaries."""
        with fsspec.open(f.path, "rb") as handle:
            handle.seek(byte_start)
            offset = byte_start
            for raw, size in bounded_lines(handle):
                offset += size
                if raw is None:
                    yield None, "line_too_long", offset
                elif raw.strip():
                    yield (*(json_record(raw) if parse else (None, None)), offset)


def json_record(raw: bytes) -> tuple[dict | None, str | None]:
    """A JSON object, or the reason there is none. Invalid UTF-8 survives as surrogates, caught per field.

    Nesting deeper than the interpreter's recursion limit is a bad row ('json_too_deep'), not a crash.
    """
    try:
        record = parse_json(raw.decode("utf-8", errors="surrogateescape"))
    except JsonTextError as exc:
        return None, "json_too_deep" if exc.too_deep else "bad_row"
    return (record, None) if isinstance(record, dict) else (None, "bad_row")
