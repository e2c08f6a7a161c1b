"""COCO captions (`annotations/captions_train2017.json`): one caption sample per annotation.

Layout: {"images": [{"id", "file_name", "width", "height"}], "annotations": [{"id", "image_id", "caption"}]};
images under `train2017/` (or `train2014/`) by `file_name`.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.sources.annotations.base import Item, SourceError, existing_dir, expect, key, load_json
from vlforge.sources.annotations.options import AdapterOptions

TASKS = ("caption", "caption_stage1")


class Options(AdapterOptions):
    adapter: Literal["coco_captions"]
    annotations: Path
    images: Path


def image_files(data: dict, images: Path, where: str) -> dict:
    """COCO `images` as {id: path under the image root}."""
    files = {}
    for i, image in enumerate(expect(key(data, "images", where), list, f"{where}: images")):
        at = f"{where}: images[{i}]"
        files[key(image, "id", at)] = str(images / key(image, "file_name", at))
    return files


def scan(options: Options, task: str) -> Iterator[Item]:
    where = str(options.annotations)
    data = expect(load_json(options.annotations, "annotations"), dict, where)
    files = image_files(data, existing_dir(options.images, "images"), where)
    for i, ann in enumerate(expect(key(data, "annotations", where), list, f"{where}: annotations")):
        image_id = key(ann, "image_id", f"{where}: annotations[{i}]")
        if image_id not in files:
            raise SourceError(f"{where}: annotations[{i}]: image_id {image_id} is not in images")
        caption = ann.get("caption")
        yield Item(f"coco:{ann.get('id', i)}", {"image": files[image_id], "caption": caption},
                         [files[image_id]])
