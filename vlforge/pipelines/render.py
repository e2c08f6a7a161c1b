"""`vlforge render`: task JSONL records -> rendered task shards, on Ray, exactly once.

The input is split into line ranges by byte offset (one streaming pass), each range a
work unit that reads its own lines, so units are independent and resumable.

Untrusted lines are bounded: line length, JSON nesting (Python's recursion limit; deeper lines
are bad lines, not crashes), images per record and image bytes per record; image paths stay
inside the JSONL file's folder tree unless `allow_outside_paths`, and only the formats of
`shards.imageio` are opened.
"""

import argparse
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from vlforge.config import ConfigError, field_errors, load_model
from vlforge.formats.errors import FieldError
from vlforge.formats.jsontext import JsonTextError, parse_json
from vlforge.formats.paths import ImpossiblePath, inside
from vlforge.formats.tasks import TASKS, image_fields, references, render
from vlforge.pipelines.executor import (
    SESSION_KEYS,
    RunReport,
    SessionOptions,
    Unit,
    UnitStats,
    add_session_flags,
    finish,
    give_up_rows,
    run_units,
)
from vlforge.pipelines.fingerprint import plan_fingerprint
from vlforge.shards.imageio import ImageRejected, decode, normalize
from vlforge.shards.keys import sanitize_key
from vlforge.shards.outdir import Plan
from vlforge.shards.writer import ShardWriter
from vlforge.sources.dumps.text import bounded_lines
from vlforge.sources.images import ImageDrop, read_image_file

NOT_IN_FINGERPRINT = ("on_error",)  # a run stopped by a bad line may be resumed with --on-error skip
FLAGS = {"max_samples": "--shard-samples", "max_bytes": "--shard-bytes"}  # option -> its flag, where they differ


class RecordError(ValueError):
    """A bad input line, located by file, line number and field."""

    def __init__(self, path: str, line: int, field: str, message: str) -> None:
        super().__init__(f"{path}:{line}: field {field}: {message}")
        self.path, self.line, self.field, self.message = path, line, field, message

    def __reduce__(self):
        return RecordError, (self.path, self.line, self.field, self.message)


Positive = Annotated[int, Field(ge=1)]


class RenderOptions(BaseModel):
    """How each line is rendered and written; validated once, errors by recipe key (`shard_samples: ...`).

    Keys are the `vlforge render` flags; `max_samples`/`max_bytes` are read as `shard_samples`/`shard_bytes`
    too. `RenderOptions("vqa")` is `RenderOptions(task="vqa")`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    task: str
    source: str | None = None
    on_error: Literal["raise", "skip"] = "raise"
    lines_per_unit: Positive = 5000
    max_samples: Positive | None = Field(1000, alias="shard_samples")
    max_bytes: Positive | None = Field(512 * 1024 * 1024, alias="shard_bytes")
    # a record with a 1 MB caption fits; a runaway line is rejected unread
    max_line_bytes: Positive = 16 * 1024 * 1024
    max_images: Positive = 32  # per record; a chat line with hundreds of <img> tags is rejected unread
    max_record_image_bytes: Positive = 256 * 1024 * 1024  # all images of one record, as stored
    allow_outside_paths: bool = False  # image paths may leave the JSONL file's folder tree

    def __init__(self, task: str | None = None, /, **data: Any) -> None:
        if task is not None:
            data["task"] = task
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(field_errors(exc)) from None

    @field_validator("task")
    @classmethod
    def _known_task(cls, task: str) -> str:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        return task


class RenderRecipe(RenderOptions, SessionOptions):
    """`vlforge render --recipe R.yaml`: every flag a key (`input`, `out`, ...), flags override keys."""

    input: list[Path] = Field(min_length=1)
    out: Path
    allow_foreign_files: bool = False  # write into an `out` holding files vlforge did not write (never deleted)

    def options(self) -> RenderOptions:
        """The per-unit part (no revalidation: it was checked as part of this recipe)."""
        return RenderOptions.model_construct(**{k: getattr(self, k) for k in RenderOptions.model_fields})


def load_render_recipe(path: str | Path | None, overrides: dict[str, Any]) -> RenderRecipe:
    """The recipe file (if any) with the given flags on top; errors name the file and the key."""
    return load_model(path, RenderRecipe, overrides)


def load_image(path: Path) -> tuple[bytes, tuple[int, int]]:
    """JPEG bytes and (width, height) of an image file, in stored orientation (`shards.imageio.normalize`)."""
    try:
        data = read_image_file(path)
    except ImageDrop as exc:
        raise FieldError("image", str(exc)) from exc
    try:
        with decode(data) as im:
            image = normalize(im, data)
    except ImageRejected as exc:
        raise FieldError("image", f"{path}: {exc}") from exc
    return image.data, image.size


def image_file(base: Path, rel: str, allow_outside: bool) -> Path:
    """The image a record names, confined to `base`'s folder tree (symlinks resolved) unless allowed."""
    path = base / rel
    try:
        outside = not allow_outside and not inside(base, path)
    except ImpossiblePath as exc:
        raise FieldError("image", str(exc)) from None
    if outside:
        raise FieldError("image", f"{rel}: outside the JSONL file's folder {base.resolve()} (--allow-outside-paths)")
    return path


def render_line(text: str, base: Path, task: str, options: RenderOptions | None = None
                ) -> tuple[dict, list[bytes], dict]:
    """One JSONL line -> (sample json, image bytes, meta); raises FieldError naming the field."""
    options = options or RenderOptions(task)
    try:
        record = parse_json(text)
    except JsonTextError as exc:
        raise FieldError("line", "JSON nested too deeply" if exc.too_deep else f"invalid JSON ({exc})") from exc
    paths = image_fields(options.task, record)
    if len(paths) > options.max_images:
        raise FieldError("image", f"{len(paths)} images, more than the limit of {options.max_images} (--max-images)")
    images, sizes, total = [], [], 0
    for i, rel in enumerate(paths):
        try:
            data, size = load_image(image_file(base, rel, options.allow_outside_paths))
        except FieldError as exc:
            raise FieldError(f"image[{i}]" if len(paths) > 1 else exc.field, exc.message) from exc
        total += len(data)
        if total > options.max_record_image_bytes:
            raise FieldError("image", f"images of the record exceed {options.max_record_image_bytes} bytes")
        images.append(data)
        sizes.append(size)
    segments = render(options.task, record, sizes)
    meta = {"images": paths, "sizes": [list(s) for s in sizes]}
    refs = references(options.task, record)
    if refs is not None:
        meta["references"] = refs  # evaluation answers (all of them), read by `vlforge eval`
    return {"task": options.task, "segments": segments}, images, meta


def iter_lines(f: BinaryIO, start: int, end: int, max_bytes: int) -> Iterator[tuple[bytes | None, int]]:
    """(line or None when over max_bytes, byte offset after it) for the lines in [start, end) of a file
    (`sources.dumps.text.bounded_lines`: an over-long line is skipped, never read whole)."""
    f.seek(start)
    offset = start
    for raw, size in bounded_lines(f, max_bytes):
        if offset >= end:
            return
        offset += size
        yield raw, offset


def unit_name(path: Path, task: str) -> str:
    """`{task}-{stem}`, or just `caption` for caption.jsonl."""
    return "-".join(dict.fromkeys([task, sanitize_key(path.stem)]))


@dataclass(frozen=True)
class RenderWork:
    """A render unit's payload: a byte range of one JSONL file, whose first line has number `first_line`."""

    path: Path
    start: int
    end: int
    first_line: int
    out_dir: Path
    options: RenderOptions

    @property
    def source(self) -> str:
        return self.options.source or sanitize_key(self.path.stem)


def split_units(path: Path, options: RenderOptions, out_dir: Path) -> list[Unit[RenderWork]]:
    """Byte ranges of `lines_per_unit` lines each; ids are stable for the same file."""
    name = unit_name(path, options.task)
    ranges, start, count, offset = [], 0, 0, 0
    with open(path, "rb") as f:
        for _, offset in iter_lines(f, 0, path.stat().st_size, options.max_line_bytes):
            count += 1
            if count % options.lines_per_unit == 0:
                ranges.append((start, offset, count - options.lines_per_unit + 1))
                start = offset
    if offset > start:
        ranges.append((start, offset, count - count % options.lines_per_unit + 1))
    return [Unit(f"{name}-{i:05d}", RenderWork(path, s, e, first, out_dir, options))
            for i, (s, e, first) in enumerate(ranges)]


def unit_lines(work: RenderWork) -> Iterator[tuple[int, bytes | None, dict]]:
    """(line number, raw line or None when over the length cap, manifest row) of the unit's non-blank lines."""
    with open(work.path, "rb") as f:
        lines = iter_lines(f, work.start, work.end, work.options.max_line_bytes)
        for n, (raw, _) in enumerate(lines, start=work.first_line):
            if raw is None or raw.strip():
                yield n, raw, {"uid": f"{work.path.name}:{n}", "source": work.source, "task": work.options.task,
                               "line": n}


def process_unit(unit: Unit[RenderWork]) -> UnitStats:
    work = unit.payload
    options, path, source = work.options, work.path, work.source
    read, reasons = 0, Counter()
    with ShardWriter(work.out_dir, unit.id, options.max_samples, options.max_bytes) as w:
        for n, raw, row in unit_lines(work):
            read += 1
            try:
                if raw is None:
                    raise FieldError("line", f"longer than {options.max_line_bytes} bytes")
                sample, images, meta = render_line(raw.decode("utf-8"), path.parent, options.task, options)
            except (FieldError, UnicodeDecodeError) as exc:
                field = exc.field if isinstance(exc, FieldError) else "line"
                message = exc.message if isinstance(exc, FieldError) else "not valid UTF-8"
                if options.on_error == "raise":
                    raise RecordError(str(path), n, field, message) from exc
                w.drop({**row, "error": message}, reason=f"bad_field:{field}", stage="render")
                reasons[f"bad_field:{field}"] += 1
                continue
            sample["source"] = source
            sample["meta"] = {**meta, "input": path.name, "line": n}
            files = {f"{i}.jpg": data for i, data in enumerate(images)}
            files["json"] = sample
            w.write(f"{source}_{n:09d}", files, row)
    dropped = sum(reasons.values())
    return UnitStats(unit.id, read=read, kept=read - dropped, dropped=dropped, reasons=dict(reasons))


def give_up_unit(unit: Unit[RenderWork], cause: str) -> UnitStats:
    """Commit a unit whose worker kept dying: every line a dropped row saying why."""
    return give_up_rows(unit, unit.payload.out_dir, (row for _, _, row in unit_lines(unit.payload)), cause)


def render_plan(path: Path, options: RenderOptions) -> Plan:
    """One plan per input file: its units, and the fingerprint a resume must match."""
    name = unit_name(path, options.task)
    flags = {FLAGS.get(name, f"--{name.replace('_', '-')}"): getattr(options, name)
             for name in RenderOptions.model_fields if name not in NOT_IN_FINGERPRINT}
    return Plan(key=f"render:{name}", pipeline="render", units=re.escape(name) + r"-\d{5}",
                fingerprint=plan_fingerprint(flags, [path]))


def run_render(
    inputs: list[Path], out_dir: Path, options: RenderOptions, session: SessionOptions | None = None,
    allow_foreign_files: bool = False,
) -> RunReport:
    """Render `inputs` into `out_dir` (`session`: where the units run; default a private local Ray)."""
    session = session or SessionOptions()
    for path in inputs:
        if not path.is_file():
            raise FileNotFoundError(f"--input: no such file {path}")
    stems = [sanitize_key(path.stem) for path in inputs]
    if len(set(stems)) != len(stems):
        raise ValueError(f"--input: file names must differ (work units are named after them), got {stems}")
    plans = [render_plan(path, options) for path in inputs]
    units = [u for path in inputs for u in split_units(path, options, out_dir)]
    return run_units(units, process_unit, out_dir, **session.model_dump(include=set(SESSION_KEYS)),
                     desc=f"render {options.task}", plan=plans, inputs=inputs, allow_foreign_files=allow_foreign_files,
                     give_up=give_up_unit)


def add_render_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Every flag but --recipe is a recipe key of the same name (`RenderRecipe`); flags override the file."""
    p = sub.add_parser("render", help="render task JSONL records into WebDataset shards")
    p.add_argument("--recipe", help="YAML recipe whose keys are these flags' names (flags override its keys)")
    p.add_argument("--task", choices=TASKS, help="recipe key task (required)")
    p.add_argument("--input", nargs="+", type=Path, help="JSONL file(s); image paths relative to each "
                                                         "(recipe key input, required)")
    p.add_argument("--out", type=Path, help="output directory (recipe key out, required)")
    p.add_argument("--source", help="dataset name recorded with every sample (default: the input file's stem)")
    p.add_argument("--on-error", choices=("raise", "skip"),
                   help="raise (default): stop at the first bad line; skip: record it as dropped in the manifest")
    p.add_argument("--shard-samples", type=int, help="samples per tar (default 1000)")
    p.add_argument("--shard-bytes", type=int, help="bytes per tar, a target (default 536870912)")
    p.add_argument("--lines-per-unit", type=int, help="input lines per resumable work unit (default 5000)")
    p.add_argument("--max-images", type=int, help="images per record; a record with more is rejected (default 32)")
    p.add_argument("--allow-outside-paths", action="store_true", default=None,
                   help="let image paths leave the JSONL file's folder tree (absolute paths, ..)")
    p.add_argument("--allow-foreign-files", action="store_true", default=None,
                   help="write into an --out that holds files vlforge did not write (they are never deleted)")
    add_session_flags(p)
    return p


def run_render_command(args: argparse.Namespace) -> int:
    flags = {k: v for k, v in vars(args).items() if k not in ("command", "recipe") and v is not None}
    recipe = load_render_recipe(args.recipe, flags)
    report = run_render(recipe.input, recipe.out, recipe.options(), recipe, recipe.allow_foreign_files)
    finish(report, recipe.out)
    return 0
