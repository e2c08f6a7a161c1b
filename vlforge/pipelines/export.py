"""`vlforge export --format qwenvl-json`: rendered shards -> Qwen-VL fine-tuning JSON + image files.

Streams: the JSON list is written record by record, images as they come, so memory stays flat.
Images are numbered by record (`images/000000007.0.jpg`), not named after their shard: two inputs may hold
tars of the same name, and Qwen-VL's tokenizer limits an image path to 256 bytes.
"""

import json
from pathlib import Path

from vlforge.formats.export import to_qwenvl_conversation
from vlforge.formats.sample import sample_images
from vlforge.shards.atomic import commit, temp_path
from vlforge.shards.reader import iter_samples


def _record(sample: dict, number: int, images_dir: Path) -> dict:
    where = f"{sample['__url__']}: sample {sample['__key__']}"
    if "json" not in sample:
        raise ValueError(f"{where}: no .json member; not a rendered task shard")
    paths = []
    for i, (ext, data) in enumerate(sample_images(sample)):
        image = images_dir / f"{number:09d}.{i}.{ext}"
        image.write_bytes(data)
        paths.append(str(image))
    try:
        sample_json = json.loads(sample["json"])
        sample_id = f"{Path(sample['__url__']).stem}_{sample['__key__']}"
        return to_qwenvl_conversation(sample_json, paths, sample_id)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{where}: cannot export ({type(exc).__name__}: {exc})") from exc


def export_qwenvl_json(shards: str | list[str], out_dir: Path) -> int:
    """Writes out_dir/data.json and out_dir/images/; returns the number of records."""
    images_dir = (out_dir / "images").resolve()  # absolute: finetune.py opens them from its own directory
    images_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "data.json"
    tmp = temp_path(final)
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            out.write("[\n")
            for sample in iter_samples(shards):
                record = _record(sample, count, images_dir)
                out.write((",\n" if count else "") + json.dumps(record, ensure_ascii=False))
                count += 1
            out.write("\n]\n")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit(tmp, final)
    return count
