"""`vlforge export --format qwenvl-json`: rendered shards -> Qwen-VL fine-tuning JSON + image files.

Streams: the JSON list is written record by record, images as they come, so memory stays flat.
"""

import json
import re
from pathlib import Path

from vlforge.formats.export import to_qwenvl_conversation
from vlforge.shards.atomic import commit, temp_path
from vlforge.shards.reader import iter_samples
from vlforge.shards.units import tar_unit

EXPORT_FORMATS = ("qwenvl-json",)
_IMAGE_MEMBER = re.compile(r"^(\d+)\.(jpg|jpeg|png|webp)$")


def sample_images(sample: dict) -> list[tuple[str, bytes]]:
    """(extension, bytes) of images 0, 1, ... in order; a single unnumbered `jpg` (OCR samples) is image 0."""
    numbered = sorted(
        (int(m.group(1)), m.group(2), sample[k]) for k in sample if (m := _IMAGE_MEMBER.match(k))
    )
    if numbered:
        return [(ext, data) for _, ext, data in numbered]
    return [(ext, sample[ext]) for ext in ("jpg", "png", "webp") if ext in sample]


def export_qwenvl_json(shards: str | list[str], out_dir: Path) -> int:
    """Writes out_dir/data.json and out_dir/images/; returns the number of records."""
    images_dir = out_dir / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / "data.json"
    tmp = temp_path(final)
    count = 0
    with open(tmp, "w", encoding="utf-8") as out:
        out.write("[\n")
        for sample in iter_samples(shards):
            sample_id = f"{tar_unit(Path(sample['__url__']))}_{sample['__key__']}"
            paths = []
            for i, (ext, data) in enumerate(sample_images(sample)):
                image = images_dir / f"{sample_id}.{i}.{ext}"
                image.write_bytes(data)
                paths.append(str(image.resolve()))
            record = to_qwenvl_conversation(json.loads(sample["json"]), paths, sample_id)
            out.write((",\n" if count else "") + json.dumps(record, ensure_ascii=False))
            count += 1
        out.write("\n]\n")
    commit(tmp, final)
    return count
