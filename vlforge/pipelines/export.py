"""`vlforge export --format qwenvl-json`: vlforge shards -> Qwen-VL fine-tuning JSON + image files.

Reads every shard the trainer reads (rendered tasks, synthdog, cleaned pairs) as the same typed `Sample`; a
sample that cannot be exported stops the export with an error naming its shard and key.

Streams: the JSON list is written record by record, images as they come, so memory stays flat.
Images are numbered by record (`images/000000007.0.jpg`), not named after their shard: two inputs may hold
tars of the same name, and Qwen-VL's tokenizer limits an image path to 256 bytes.

The output directory is claimed like every pipeline's (`shards.outdir`): never an input, never one holding
files vlforge did not write (`allow_foreign_files` writes beside them). `data.json` and `images/` already
there are replaced only if a vlforge run's journal lists them as that run wrote them. Images go to a
temporary folder renamed to `images/` once all are written, then `data.json` is committed; a failed run
leaves neither.
"""

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

from vlforge.formats.export import to_qwenvl_conversation
from vlforge.formats.sample import SampleError, sample_from_wds
from vlforge.pipelines.executor import RunReport, UnitStats, finish
from vlforge.shards.atomic import commit, commit_dir, parse_temp, temp_path
from vlforge.shards.journal import Written
from vlforge.shards.listing import shard_urls
from vlforge.shards.outdir import Claim, OutDirError, Plan, claim_out_dir
from vlforge.shards.reader import iter_tar

DATA, IMAGES = "data.json", "images"
PLAN = Plan(key="export", pipeline="export", units=r"(?!)", extras=(DATA, IMAGES))  # no units: one commit


def _record(wds: dict, number: int, write_dir: Path, final_dir: Path) -> dict:
    """The sample's record; its images are written to write_dir, named as final_dir will hold them."""
    sample = sample_from_wds(wds)
    names = [f"{number:09d}.{i}.{ext}" for i, (ext, _) in enumerate(sample.image_files)]
    try:
        record = to_qwenvl_conversation(sample, [str(final_dir / name) for name in names],
                                        f"{Path(sample.shard).stem}_{sample.key}")
    except ValueError as exc:
        raise SampleError("export", sample.where(), f"cannot export ({exc})") from exc
    for name, (_, data) in zip(names, sample.image_files, strict=True):
        (write_dir / name).write_bytes(data)
    return record


def _write(urls: list[str], data: Path, write_dir: Path, final_dir: Path) -> int:
    count = 0
    with open(data, "w", encoding="utf-8") as out:
        out.write("[\n")
        for wds in itertools.chain.from_iterable(map(iter_tar, urls)):
            record = _record(wds, count, write_dir, final_dir)
            out.write((",\n" if count else "") + json.dumps(record, ensure_ascii=False))
            count += 1
        out.write("\n]\n")
    return count


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _prepare(claim: Claim) -> None:
    """Refuse to replace outputs vlforge did not write; delete what killed exports here left behind."""
    out = claim.out_dir
    written = Written(out, claim.tokens)
    for name in (DATA, IMAGES):
        if (out / name).exists() and out / name not in written:
            raise OutDirError(f"--out {out}: {name} was not written by a vlforge export (or changed since) and is "
                              "never replaced; move it away or use a new directory")
        for debris in out.glob(f".{name}.*.tmp"):
            temp = parse_temp(debris.name)
            if temp and temp[0] == name and temp[1] in claim.tokens:
                _remove(debris)


def export_qwenvl_json(shards: str | list[str], out_dir: Path, allow_foreign_files: bool = False) -> int:
    """Writes out_dir/data.json and out_dir/images/; returns the number of records.

    `shards` are `shard_urls` patterns: FileNotFoundError, before anything is written, for one that names no tar.
    """
    out_dir = Path(out_dir)
    inputs = [shards] if isinstance(shards, str) else list(shards)
    urls = shard_urls(inputs)
    with claim_out_dir(out_dir, PLAN, inputs=inputs, allow_foreign_files=allow_foreign_files) as claim:
        _prepare(claim)
        data, images = out_dir / DATA, out_dir / IMAGES
        tmp_data, tmp_images = temp_path(data), temp_path(images)
        try:
            tmp_images.mkdir()
            # absolute: finetune.py opens them from its own directory
            count = _write(urls, tmp_data, tmp_images, images.resolve())
            if images.exists():
                shutil.rmtree(images)  # checked above: the folder a vlforge export wrote, unchanged
            commit_dir(tmp_images, images)
            commit(tmp_data, data)
        except BaseException:
            _remove(tmp_images)
            _remove(tmp_data)
            raise
    return count


def add_export_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("export", help="write rendered shards in another project's format")
    p.add_argument("--format", required=True, choices=("qwenvl-json",))
    p.add_argument("--input", required=True, nargs="+", help="shards: dir, brace pattern, files or fsspec URLs")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--allow-foreign-files", action="store_true",
                   help="write into an --out that holds files vlforge did not write (they are never replaced)")
    return p


def run_export(args: argparse.Namespace) -> int:
    """One streaming pass, so one unit in the executor's end-of-run summary."""
    t0 = time.perf_counter()
    count = export_qwenvl_json(args.input, args.out, args.allow_foreign_files)
    print(f"wrote {count} records to {args.out / DATA} (images in {args.out / IMAGES})")
    finish(RunReport(stats=[UnitStats("export", read=count, kept=count)], elapsed_s=time.perf_counter() - t0),
           args.out)
    return 0
