"""The canonical JSONL that `vlforge render` reads: one record a line, any task (chat with several images too).

Image paths are relative to the JSONL file, as for `vlforge render`. A line that is not JSON stops the plan
(the file is malformed); a record with a bad field becomes a dropped manifest row when it is rendered.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.formats.errors import FieldError
from vlforge.formats.tasks import image_fields
from vlforge.sources.annotations.base import Item, SourceError, existing_file
from vlforge.sources.annotations.options import AdapterOptions

TASKS = None  # every task


class Options(AdapterOptions):
    adapter: Literal["jsonl"]
    path: Path


def scan(options: Options, task: str) -> Iterator[Item]:
    path = existing_file(options.path, "path")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SourceError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
            try:
                images = [str(path.parent / rel) for rel in image_fields(task, record)]
            except FieldError:
                images = []  # rendered later, where the bad field becomes the sample's drop reason
            yield Item(f"{path.stem}:{n}", record, images)
