"""`vlforge render`: task JSONL records -> rendered task shards, on Ray, exactly once.

The input is split into line ranges by byte offset (one streaming pass), each range a
work unit that reads its own lines, so units are independent and resumable.
"""

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image

from vlforge.formats.errors import FieldError
from vlforge.formats.tasks import TASKS, image_fields, render
from vlforge.pipelines.runner import RunReport, Unit, run_units
from vlforge.shards.keys import sanitize_key
from vlforge.shards.writer import ShardWriter

MAX_IMAGE_PIXELS = 89_478_485  # PIL's own decompression-bomb bound
MAX_IMAGE_BYTES = 64 * 1024 * 1024
ON_ERROR = ("raise", "skip")


class RecordError(ValueError):
    """A bad input line, located by file, line number and field."""

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        super().__init__(f"{path}:{line}: field {field}: {message}")
        self.path, self.line, self.field, self.message = path, line, field, message

    def __reduce__(self):
        return RecordError, (self.path, self.line, self.field, self.message)


@dataclass(frozen=True)
class RenderOptions:
    task: str
    source: str | None = None
    on_error: str = "raise"
    lines_per_unit: int = 5000
    max_samples: int | None = 1000
    max_bytes: int | None = 512 * 1024 * 1024
    # a record with a 1 MB caption fits; a runaway line is rejected unread
    max_line_bytes: int = 16 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"--task: unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        if self.on_error not in ON_ERROR:
            raise ValueError(f"--on-error: expected one of {', '.join(ON_ERROR)}, got {self.on_error!r}")
        for flag, value in (("--lines-per-unit", self.lines_per_unit), ("--shard-samples", self.max_samples),
                            ("--shard-bytes", self.max_bytes), ("max_line_bytes", self.max_line_bytes)):
            if value is not None and value < 1:
                raise ValueError(f"{flag} must be >= 1, got {value}")


def load_image(path: Path) -> tuple[bytes, tuple[int, int]]:
    """JPEG bytes and (width, height); JPEGs pass through untouched, other formats are re-encoded."""
    if not path.is_file():
        raise FieldError("image", f"no such image file: {path}")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise FieldError("image", f"{path}: file larger than {MAX_IMAGE_BYTES} bytes")
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise FieldError("image", f"{path}: {im.width}x{im.height} exceeds {MAX_IMAGE_PIXELS} pixels")
            im.load()
            size = im.size
            if im.format == "JPEG" and im.mode in ("RGB", "L"):
                return data, size
            rgba = im.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
    except FieldError:
        raise
    except Exception as exc:
        raise FieldError("image", f"{path}: cannot decode ({type(exc).__name__}: {exc})") from exc
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=95)
    return buf.getvalue(), size


def render_line(text: str, base: Path, task: str) -> tuple[dict, list[bytes], dict]:
    """One JSONL line -> (sample json, image bytes, meta); raises FieldError naming the field."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FieldError("line", f"invalid JSON ({exc.msg} at column {exc.colno})") from exc
    paths = image_fields(task, record)
    images, sizes = [], []
    for i, rel in enumerate(paths):
        try:
            data, size = load_image(base / rel)
        except FieldError as exc:
            raise FieldError(f"image[{i}]" if len(paths) > 1 else exc.field, exc.message) from exc
        images.append(data)
        sizes.append(size)
    segments = render(task, record, sizes)
    meta = {"images": paths, "sizes": [list(s) for s in sizes]}
    return {"task": task, "segments": segments}, images, meta


def iter_lines(f: BinaryIO, start: int, end: int, max_bytes: int) -> Iterator[bytes | None]:
    """The lines in [start, end) of a file; None for a line over max_bytes (skipped, never read whole)."""
    f.seek(start)
    while f.tell() < end:
        raw = f.readline(max_bytes + 1)
        if len(raw) > max_bytes:
            while raw and not raw.endswith(b"\n"):
                raw = f.readline(1 << 20)
            yield None
        else:
            yield raw


def split_units(path: Path, options: RenderOptions, out_dir: Path) -> list[Unit]:
    """Byte ranges of `lines_per_unit` lines each; ids are stable for the same file."""
    # `caption`, not `caption-caption`
    name = "-".join(dict.fromkeys([options.task, sanitize_key(path.stem)]))
    ranges, start, count = [], 0, 0
    with open(path, "rb") as f:
        for _ in iter_lines(f, 0, path.stat().st_size, options.max_line_bytes):
            count += 1
            if count % options.lines_per_unit == 0:
                ranges.append((start, f.tell(), count - options.lines_per_unit + 1))
                start = f.tell()
        if f.tell() > start:
            ranges.append((start, f.tell(), count - count % options.lines_per_unit + 1))
    return [
        Unit(
            id=f"{name}-{i:05d}",
            payload={"path": str(path), "start": s, "end": e, "first_line": first, "out_dir": str(out_dir),
                     "options": options},
        )
        for i, (s, e, first) in enumerate(ranges)
    ]


def process_unit(unit: Unit) -> dict:
    p = unit.payload
    options: RenderOptions = p["options"]
    path = Path(p["path"])
    source = options.source or sanitize_key(path.stem)
    stats = {"unit": unit.id, "read": 0, "kept": 0, "dropped": 0}
    writer = ShardWriter(p["out_dir"], unit.id, options.max_samples, options.max_bytes)
    with open(path, "rb") as f, writer as w:
        lines = iter_lines(f, p["start"], p["end"], options.max_line_bytes)
        for n, raw in enumerate(lines, start=p["first_line"]):
            if raw is not None and not raw.strip():
                continue
            stats["read"] += 1
            row = {"uid": f"{path.name}:{n}", "source": source, "task": options.task, "line": n}
            try:
                if raw is None:
                    raise FieldError("line", f"longer than {options.max_line_bytes} bytes")
                sample, images, meta = render_line(raw.decode("utf-8"), path.parent, options.task)
            except (FieldError, UnicodeDecodeError) as exc:
                field = exc.field if isinstance(exc, FieldError) else "line"
                message = exc.message if isinstance(exc, FieldError) else "not valid UTF-8"
                if options.on_error == "raise":
                    raise RecordError(str(path), n, field, message) from exc
                w.drop({**row, "error": message}, reason=f"bad_field:{field}", stage="render")
                stats["dropped"] += 1
                continue
            sample["source"] = source
            sample["meta"] = {**meta, "input": path.name, "line": n}
            files = {f"{i}.jpg": data for i, data in enumerate(images)}
            files["json"] = sample
            w.write(f"{source}_{n:09d}", files, row)
            stats["kept"] += 1
    return stats


def run_render(
    inputs: list[Path], out_dir: Path, options: RenderOptions, ray_address: str | None = None
) -> RunReport:
    for path in inputs:
        if not path.is_file():
            raise FileNotFoundError(f"--input: no such file {path}")
    stems = [sanitize_key(path.stem) for path in inputs]
    if len(set(stems)) != len(stems):
        raise ValueError(f"--input: file names must differ (work units are named after them), got {stems}")
    units = [u for path in inputs for u in split_units(path, options, out_dir)]
    return run_units(units, process_unit, out_dir, ray_address=ray_address, desc=f"render {options.task}")
