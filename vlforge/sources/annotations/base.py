"""What every adapter yields, and the checks they share: an Item per training sample, errors naming the source.

`scan(options, task)` is a generator: the planner streams its Items to disk, so a source's size never
decides the planner's memory. Line-based sources (JSONL, text, shards) are read a line or a tar at a time;
a release that is one JSON document (COCO, VQAv2, GQA, VG, RefCOCO, ...) is parsed one file at a time.
A missing file or a layout the adapter does not know fails at plan time, before any work (SourceError);
a bad single record or a missing image is the mixer's business (a manifest row), never the adapter's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlforge.formats.jsontext import JsonTextError
from vlforge.formats.jsontext import parse_json as parse_json_text
from vlforge.sources.dumps.text import MAX_LINE_BYTES, bounded_lines

LINE_TOO_LONG = "line_too_long"  # the drop reason of a JSONL line over the cap, the one dumps use


class SourceError(ValueError):
    """A source that cannot be read as the layout it claims; the message names the file and the key."""


@dataclass(frozen=True)
class ShardMember:
    """An image stored in a tar: `member` is its full name inside `tar`."""

    tar: str
    member: str


ImageRef = str | ShardMember  # a file path, or a member of a tar


@dataclass
class Item:
    """One training sample: the canonical record render takes, and its images in order.

    `frame` is the (width, height) the record's boxes are measured in when that is not the image itself:
    GRIT's normalised boxes use (1, 1). None means pixels of the image as stored. `reject` is a drop reason
    the adapter already knows (the sample keeps its manifest row, with that reason, instead of vanishing).
    """

    uid: str
    record: dict
    images: list[ImageRef] = field(default_factory=list)
    frame: tuple[float, float] | None = None
    reject: str | None = None


def existing_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"{what}: no such file {path}")
    return path


def existing_dir(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise SourceError(f"{what}: no such directory {path}")
    return path


def parse_json(text: str | bytes, where: str) -> Any:
    """JSON text (`formats.jsontext`); SourceError naming `where` when it is not JSON or nests too deeply."""
    try:
        return parse_json_text(text)
    except JsonTextError as exc:
        raise SourceError(f"{where} is not valid JSON ({exc})") from None


def load_json(path: str | Path, what: str) -> Any:
    """A whole JSON file; SourceError naming the file when it is missing or not JSON."""
    path = existing_file(path, what)
    return parse_json(path.read_bytes(), f"{what}: {path}")


def json_lines(path: Path, max_bytes: int = MAX_LINE_BYTES) -> Iterator[tuple[int, Any]]:
    """(line number, value) of each non-blank line of a JSONL file, each line bounded: a line over
    `max_bytes` is skipped unread and gives LINE_TOO_LONG as its value (a dropped sample, not a stop);
    a line that is not JSON is a SourceError naming FILE:LINE."""
    with open(path, "rb") as f:
        for n, (raw, _) in enumerate(bounded_lines(f, max_bytes), start=1):
            if raw is None:
                yield n, LINE_TOO_LONG
            elif raw.strip():
                yield n, parse_json(raw, f"{path}:{n}: line")


def expect(value: Any, kind: type, where: str) -> Any:
    """`value` if it is a `kind`, else a SourceError saying what the layout should have had there."""
    if not isinstance(value, kind):
        raise SourceError(f"{where}: expected a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def key(obj: dict, name: str, where: str) -> Any:
    """obj[name], or a SourceError naming the missing key (a file of another layout)."""
    if not isinstance(obj, dict) or name not in obj:
        raise SourceError(f"{where}: missing key {name!r} (is this the right file for this adapter?)")
    return obj[name]


def most_common(answers: list[str], preferred: str | None = None) -> str | None:
    """The answer given most often; on a tie `preferred` if it is among the tied, else the first one given."""
    counts = Counter(a for a in answers if isinstance(a, str) and a.strip())
    if not counts:
        return preferred
    top = max(counts.values())
    tied = [a for a in counts if counts[a] == top]
    return preferred if preferred in tied else tied[0]
