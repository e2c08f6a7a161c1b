"""Pure text: `.txt` files (a sample per non-empty line, or per file) and JSONL with a `text` field."""

import json
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import Item, SourceError, existing_file
from vlforge.sources.annotations.options import AdapterOptions

TASKS = ("text",)


class Options(AdapterOptions):
    adapter: Literal["text"]
    paths: list[Path]
    per: Literal["line", "file"] = "line"  # .txt only


def _jsonl(path: Path) -> list[Item]:
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
                text = record.get("text") if isinstance(record, dict) else None
                items.append(Item(f"{path.stem}:{n}", {"text": text}))
    return items


def _txt(path: Path, per: str) -> list[Item]:
    text = path.read_text(encoding="utf-8", errors="replace")
    if per == "file":
        return [Item(path.stem, {"text": text})] if text.strip() else []
    return [Item(f"{path.stem}:{n}", {"text": line.rstrip("\n")})
            for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def scan(options: Options, task: str) -> list[Item]:
    items = []
    for path in options.paths:
        path = existing_file(path, "paths")
        items += _jsonl(path) if path.suffix == ".jsonl" else _txt(path, options.per)
    return items
