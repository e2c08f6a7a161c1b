"""Visual Genome `region_descriptions.json`: every region a `grounded_caption` or `ref_grounding` sample.

Layout: [{"id": image_id, "regions": [{"region_id", "image_id", "phrase", "x", "y", "width", "height"}]}];
images `VG_100K/{image_id}.jpg` or `VG_100K_2/{image_id}.jpg` (the first folder that has it). Boxes are
pixels of the image as stored.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import Item, existing_dir, expect, key, load_json
from vlforge.sources.annotations.options import AdapterOptions

TASKS = ("grounded_caption", "ref_grounding")
_TEXT = {"ref_grounding": "expression", "grounded_caption": "caption"}


class Options(AdapterOptions):
    adapter: Literal["visual_genome"]
    regions: Path
    images: list[Path]  # VG_100K/ and VG_100K_2/


def _locate(image_id: object, folders: list[Path]) -> str:
    for folder in folders:
        path = folder / f"{image_id}.jpg"
        if path.is_file():
            return str(path)
    return str(folders[0] / f"{image_id}.jpg")  # missing: a manifest row when the mixer reads it


def scan(options: Options, task: str) -> Iterator[Item]:
    folders = [existing_dir(p, "images") for p in options.images]
    where = str(options.regions)
    located: tuple[object, str] = (None, "")  # an image's regions come together: one lookup per image
    for i, entry in enumerate(expect(load_json(options.regions, "regions"), list, where)):
        for j, region in enumerate(expect(key(entry, "regions", f"{where}: [{i}]"), list, f"{where}: [{i}]")):
            at = f"{where}: [{i}].regions[{j}]"
            image_id = region.get("image_id", entry.get("id", entry.get("image_id")))
            x, y = key(region, "x", at), key(region, "y", at)
            box = [x, y, key(region, "width", at), key(region, "height", at)]
            if located[0] != image_id:
                located = (image_id, _locate(image_id, folders))
            path = located[1]
            record = {"image": path, _TEXT[task]: key(region, "phrase", at), "box": box, "box_format": "xywh"}
            yield Item(f"vg:{region.get('region_id', f'{i}-{j}')}", record, [path])
