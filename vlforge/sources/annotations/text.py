"""Pure text: `.txt` files (a sample per non-empty line, or per file) and JSONL with a `text` field."""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import LINE_TOO_LONG, Item, existing_file, json_lines
from vlforge.sources.annotations.options import AdapterOptions

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
    if per == "file":
        text = path.read_text(encoding="utf-8", errors="replace")
        if text.strip():
            yield Item(path.stem, {"text": text})
        return
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield Item(f"{path.stem}:{n}", {"text": line.rstrip("\r\n")})


def scan(options: Options, task: str) -> Iterator[Item]:
    for path in options.paths:
        path = existing_file(path, "paths")
        yield from _jsonl(path) if path.suffix == ".jsonl" else _txt(path, options.per)
