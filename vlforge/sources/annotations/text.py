"""Pure text: `.txt` files (a sample per non-empty line, or per file) and JSONL with a `text` field."""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import LINE_TOO_LONG, Item, existing_file, json_lines
from vlforge.sources.annotations.options import AdapterOptions
from vlforge.sources.dumps.text import MAX_LINE_BYTES, bounded_lines

TASKS = ("text",)


class Options(AdapterOptions):
    adapter: Literal["text"]
    paths: list[Path]
    per: Literal["line", "file"] = "line"  # .txt only


def _jsonl(path: Path) -> Iterator[Item]:
    for n, record in json_lines(path):
        if record is LINE_TOO_LONG:
            yield Item(f"{path.stem}:{n}", {}, reject=LINE_TOO_LONG)
        else:
            yield Item(f"{path.stem}:{n}", {"text": record.get("text") if isinstance(record, dict) else None})


def _txt(path: Path, per: str) -> Iterator[Item]:
    """A line (or, `per: file`, the file) over MAX_LINE_BYTES is a dropped sample, never read whole."""
    if per == "file":
        if path.stat().st_size > MAX_LINE_BYTES:
            yield Item(path.stem, {}, reject=LINE_TOO_LONG)
        elif (text := path.read_text(encoding="utf-8", errors="replace")).strip():
            yield Item(path.stem, {"text": text})
        return
    with open(path, "rb") as f:
        for n, (raw, _) in enumerate(bounded_lines(f), start=1):
            if raw is None:
                yield Item(f"{path.stem}:{n}", {}, reject=LINE_TOO_LONG)
            elif raw.strip():
                yield Item(f"{path.stem}:{n}", {"text": raw.decode("utf-8", errors="replace").rstrip("\r\n")})


def scan(options: Options, task: str) -> Iterator[Item]:
    for path in options.paths:
        path = existing_file(path, "paths")
        yield from _jsonl(path) if path.suffix == ".jsonl" else _txt(path, options.per)
