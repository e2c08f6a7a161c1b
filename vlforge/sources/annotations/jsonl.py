"""The canonical JSONL that `vlforge render` reads: one record a line, any task (chat with several images too).

Image paths are relative to the JSONL file, as for `vlforge render`. A line that is not JSON stops the plan
(the file is malformed); a line over the line cap is a dropped row (`line_too_long`), never read whole;
a record with a bad field becomes a dropped manifest row when it is rendered.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.formats.errors import FieldError
from vlforge.formats.tasks import image_fields
from vlforge.sources.annotations.base import LINE_TOO_LONG, Item, existing_file, json_lines
from vlforge.sources.annotations.options import AdapterOptions

TASKS = None  # every task


class Options(AdapterOptions):
    adapter: Literal["jsonl"]
    path: Path

    def image_roots(self) -> list[Path]:
        return [self.path.parent]  # as `vlforge render`: the JSONL file's folder tree


def scan(options: Options, task: str) -> Iterator[Item]:
    path = existing_file(options.path, "path")
    for n, record in json_lines(path):
        if record is LINE_TOO_LONG:
            yield Item(f"{path.stem}:{n}", {}, reject=LINE_TOO_LONG)
            continue
        try:
            images = [str(path.parent / rel) for rel in image_fields(task, record)]
        except FieldError:
            images = []  # rendered later, where the bad field becomes the sample's drop reason
        yield Item(f"{path.stem}:{n}", record, images)
