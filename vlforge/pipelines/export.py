"""`vlforge export --format qwenvl-json`: rendered shards -> Qwen-VL fine-tuning JSON + image files.

Streams: the JSON list is written record by record, images as they come, so memory stays flat.
Images are numbered by record (`images/000000007.0.jpg`), not named after their shard: two inputs may hold
tars of the same name, and Qwen-VL's tokenizer limits an image path to 256 bytes.

The output directory is claimed like every pipeline's (`shards.outdir`): never an input, never one holding
files vlforge did not write (`allow_foreign_files` writes beside them). `data.json` and `images/` already
there are replaced only if a vlforge run's journal lists them as that run wrote them. Images go to a
temporary folder renamed to `images/` once all are written, then `data.json` is committed; a failed run
leaves neither.
"""

import json
import shutil
from pathlib import Path

from vlforge.formats.export import to_qwenvl_conversation
from vlforge.formats.sample import sample_images
from vlforge.shards.atomic import commit, commit_dir, parse_temp, temp_path
from vlforge.shards.journal import Written
from vlforge.shards.outdir import Claim, OutDirError, Plan, claim_out_dir
from vlforge.shards.reader import iter_samples

DATA, IMAGES = "data.json", "images"
PLAN = Plan(key="export", pipeline="export", units=r"(?!)", extras=(DATA, IMAGES))  # no units: one commit


def _record(sample: dict, number: int, write_dir: Path, final_dir: Path) -> dict:
    where = f"{sample['__url__']}: sample {sample['__key__']}"
    if "json" not in sample:
        raise ValueError(f"{where}: no .json member; not a rendered task shard")
    paths = []
    for i, (ext, data) in enumerate(sample_images(sample)):
        name = f"{number:09d}.{i}.{ext}"
        (write_dir / name).write_bytes(data)
        paths.append(str(final_dir / name))
    try:
        sample_json = json.loads(sample["json"])
        sample_id = f"{Path(sample['__url__']).stem}_{sample['__key__']}"
        return to_qwenvl_conversation(sample_json, paths, sample_id)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: cannot export ({type(exc).__name__}: {exc})") from exc


def _write(shards: str | list[str], data: Path, write_dir: Path, final_dir: Path) -> int:
    count = 0
    with open(data, "w", encoding="utf-8") as out:
        out.write("[\n")
        for sample in iter_samples(shards):
            record = _record(sample, count, write_dir, final_dir)
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
    """Writes out_dir/data.json and out_dir/images/; returns the number of records."""
    out_dir = Path(out_dir)
    inputs = [shards] if isinstance(shards, str) else list(shards)
    with claim_out_dir(out_dir, PLAN, inputs=inputs, allow_foreign_files=allow_foreign_files) as claim:
        _prepare(claim)
        data, images = out_dir / DATA, out_dir / IMAGES
        tmp_data, tmp_images = temp_path(data), temp_path(images)
        try:
            tmp_images.mkdir()
            # absolute: finetune.py opens them from its own directory
            count = _write(shards, tmp_data, tmp_images, images.resolve())
            if images.exists():
                shutil.rmtree(images)  # checked above: the folder a vlforge export wrote, unchanged
            commit_dir(tmp_images, images)
            commit(tmp_data, data)
        except BaseException:
            _remove(tmp_images)
            _remove(tmp_data)
            raise
    return count
