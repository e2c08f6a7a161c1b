"""One work unit of a mix: a stretch of the planned order rendered into its own tars and manifest.

Every planned sample ends in one manifest row: kept (with its task, source, estimated length, image
hashes) or dropped with a reason (`image_missing`, `image_outside_root`, `box_outside_image`, `bad_field:F`,
`in_eval_set`, ...).
The unit computes its stretch of the order from the plan's counts (`plan.MixWork.entries`) and reads
each record from the plan folder's spilled sources, so its memory is that of one stretch, whatever the mix.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from vlforge.formats.errors import FieldError
from vlforge.formats.paths import ImpossiblePath, inside
from vlforge.formats.segments import IMAGE_SLOT, join_text
from vlforge.formats.tasks import image_fields, render
from vlforge.pipelines.executor import Unit, UnitStats, give_up_rows
from vlforge.pipelines.mix.dedup import Duplicates
from vlforge.pipelines.mix.images import EvalSet, Prepared, prepare
from vlforge.pipelines.mix.plan import ImageOptions, MixWork
from vlforge.pipelines.mix.spill import Sources
from vlforge.shards.writer import ShardWriter
from vlforge.sources.annotations import ImageRef, Item, ShardMember
from vlforge.sources.annotations.boxes import BoxOutside, fit_record
from vlforge.sources.images import ImageDrop as Drop  # one drop exception: images and samples alike
from vlforge.sources.images import TarReader, read_bytes

IMAGE_POSITIONS = 258  # <img> + 256 image positions + </img>


def estimated_length(segments: list[dict], images: int) -> int:
    """Text characters (image slots left out) plus 258 positions per image: what the trainer packs by."""
    return len(join_text(segments)) - images * len(IMAGE_SLOT) + IMAGE_POSITIONS * images


def _with_lang(record: dict, lang: str) -> dict:
    return record if lang == "auto" else {**record, "lang": lang}


def _confined(ref: ImageRef, roots: list[str] | None) -> None:
    """A file the record names must lie in one of its source's image folders (roots None: any file)."""
    if roots is None or isinstance(ref, ShardMember):
        return
    try:
        outside = not any(inside(root, ref) for root in roots)
    except ImpossiblePath as exc:
        raise Drop("image_missing", str(exc)) from None  # what reading it would say: there is no such file
    if outside:
        raise Drop("image_outside_root", f"{ref}: outside the source's image folders {roots} "
                                         "(allow_outside_paths / --allow-outside-paths)")


def _images(item: Item, options: ImageOptions, tars: TarReader, evals: EvalSet | None,
            roots: tuple[str, ...] | None = None) -> list[Prepared]:
    prepared = []
    for ref in item.images:
        _confined(ref, roots)
        image = prepare(read_bytes(ref, tars), options.max_side, options.quality, options.phash)
        if evals is not None and image in evals:
            raise Drop("in_eval_set", f"image {ref} is in the evaluation set")
        prepared.append(image)
    return prepared


def build_sample(item: Item, task: str, lang: str, options: ImageOptions, tars: TarReader,
                 evals: EvalSet | None = None, roots: tuple[str, ...] | None = None) -> tuple[dict, dict, dict]:
    """(sample json, shard files, manifest values) of one planned item; Drop says why it cannot be used."""
    if item.reject:
        raise Drop(item.reject, f"{item.uid}: rejected by its source adapter ({item.reject})")
    record = _with_lang(item.record, lang)
    try:
        paths = image_fields(task, record)
    except FieldError as exc:
        raise Drop(f"bad_field:{exc.field}", exc.message) from None
    if len(paths) != len(item.images):
        raise Drop("bad_field:image", f"record names {len(paths)} images, the source found {len(item.images)}")
    images = _images(item, options, tars, evals, roots)
    frames = [item.frame or image.size for image in images]
    try:
        if frames:
            record, clipped = fit_record(task, record, *frames[0])
        else:
            clipped = 0
        segments = render(task, record, frames)
    except BoxOutside as exc:
        raise Drop("box_outside_image", str(exc)) from None
    except FieldError as exc:
        raise Drop(f"bad_field:{exc.field}", exc.message) from None
    length = estimated_length(segments, len(images))
    sample = {"task": task, "segments": segments, "est_tokens": length,
              "meta": {"uid": item.uid, "sizes": [list(image.size) for image in images]}}
    files = {f"{i}.jpg": image.data for i, image in enumerate(images)}
    values = {"est_tokens": length, "images": len(images), "boxes_clipped": clipped,
              "reencoded": sum(image.reencoded for image in images),
              "sha256": ",".join(image.sha256 for image in images) or None,
              "phash": ",".join(image.phash for image in images if image.phash) or None}
    return sample, files, values


def process_unit(unit: Unit[MixWork]) -> UnitStats:
    p = unit.payload
    read, kept, reasons = 0, 0, Counter()
    folder = Path(p.plan_dir)
    evals = EvalSet(folder) if p.exclude_eval else None
    duplicates = Duplicates(folder) if p.drop_duplicates != "none" else None
    tars, sources = TarReader(), Sources(folder)
    try:
        with ShardWriter(p.out, unit.id, p.max_samples, p.max_bytes) as writer:
            for position, index, record_index in p.entries():
                source = p.sources[index]
                item = sources.item(index, record_index)
                read += 1
                row = {"uid": item.uid, "source": source.name, "task": source.task, "position": position}
                try:
                    if duplicates is not None and (first := duplicates.earlier_source(index, record_index)) is not None:
                        raise Drop("duplicate_image", f"its image is also in {p.sources[first].name}, "
                                                      "a source listed earlier in the recipe")
                    sample, files, values = build_sample(item, source.task, source.lang, p.images, tars, evals,
                                                         source.roots)
                except Drop as exc:
                    writer.drop({**row, "error": str(exc)[:300]}, exc.reason, "mix")
                    reasons[exc.reason] += 1
                    continue
                sample["source"] = source.name
                sample["meta"]["position"] = position
                writer.write(f"{position:010d}", {**files, "json": sample}, {**row, **values})
                kept += 1
    finally:
        tars.close()
        sources.close()
    return UnitStats(unit.id, read=read, kept=kept, dropped=read - kept, reasons=dict(reasons))


def give_up_unit(unit: Unit[MixWork], cause: str) -> UnitStats:
    """Commit a unit whose worker kept dying: every planned position a dropped row saying why."""
    p = unit.payload
    rows = ({"uid": None, "source": p.sources[index].name, "task": p.sources[index].task, "position": position}
            for position, index, _ in p.entries())
    return give_up_rows(unit, p.out, rows, cause)
