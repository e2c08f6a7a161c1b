"""RefCOCO / RefCOCO+ / RefCOCOg: referring expressions (refs as JSON) on COCO instances.

Layout: refs [{"ref_id", "ann_id", "image_id", "split", "sentences": [{"sent", "raw", "tokens", "sent_id"}],
"category_id"}] and `instances.json` {"images": [{"id", "file_name", ...}], "annotations": [{"id", "bbox"
(COCO x, y, w, h in pixels), "image_id", ...}]}; images under `train2014/`.

The releases ship refs as a pickle (`refs(unc).p`). Unpickling runs whatever code the file names, so this
adapter reads JSON only; `refs_pickle_to_json` converts a pickle with an unpickler that refuses every class
and function, so a pickle that is not plain lists, dicts, strings and numbers is rejected, never executed.
Every sentence of a ref in the chosen splits is one sample: `ref_grounding` (expression -> box) or
`grounded_caption` (box -> expression).
"""

import io
import json
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from vlforge.shards.atomic import commit, temp_path
from vlforge.sources.annotations.base import Item, SourceError, existing_dir, expect, key, load_json
from vlforge.sources.annotations.coco_captions import image_files
from vlforge.sources.annotations.options import AdapterOptions

TASKS = ("ref_grounding", "grounded_caption")
_TEXT = {"ref_grounding": "expression", "grounded_caption": "caption"}


class Options(AdapterOptions):
    adapter: Literal["refcoco"]
    refs: Path
    instances: Path
    images: Path
    splits: tuple[str, ...] = ("train",)  # never val/test/testA/testB into training by default


def scan(options: Options, task: str) -> Iterator[Item]:
    if str(options.refs).endswith(".p"):
        raise SourceError(f"refs: {options.refs} is a pickle; convert it first with "
                          f"`python scripts/refcoco_refs_to_json.py {options.refs} refs.json` (reads no code)")
    images = existing_dir(options.images, "images")
    rwhere, iwhere = str(options.refs), str(options.instances)
    refs = expect(load_json(options.refs, "refs"), list, rwhere)
    instances = expect(load_json(options.instances, "instances"), dict, iwhere)
    files = image_files(instances, images, iwhere)
    boxes = {key(a, "id", f"{iwhere}: annotations[{i}]"): key(a, "bbox", f"{iwhere}: annotations[{i}]")
             for i, a in enumerate(expect(key(instances, "annotations", iwhere), list, f"{iwhere}: annotations"))}
    for i, ref in enumerate(refs):
        where = f"{rwhere}: [{i}]"
        if key(ref, "split", where) not in options.splits:
            continue
        ann_id, image_id = key(ref, "ann_id", where), key(ref, "image_id", where)
        if ann_id not in boxes or image_id not in files:
            raise SourceError(f"{where}: ann_id {ann_id} or image_id {image_id} is not in {iwhere}")
        for j, sentence in enumerate(expect(key(ref, "sentences", where), list, f"{where}.sentences")):
            record = {"image": files[image_id], _TEXT[task]: key(sentence, "sent", f"{where}.sentences[{j}]"),
                      "box": boxes[ann_id], "box_format": "xywh"}
            yield Item(f"ref:{key(ref, 'ref_id', where)}:{sentence.get('sent_id', j)}", record,
                       [files[image_id]])


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        raise SourceError(f"refuses to load {module}.{name}: refs are plain lists and dicts, "
                          f"a pickle that names a class or function is not a RefCOCO refs file")


def _text(value: object) -> object:
    """Python 2 pickles hold byte strings: decode them as UTF-8, recursively."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, list):
        return [_text(v) for v in value]
    if isinstance(value, dict):
        return {_text(k): _text(v) for k, v in value.items()}
    return value


def refs_pickle_to_json(src: Path, dst: Path) -> int:
    """Convert `refs(unc).p` to JSON without executing anything; returns the number of refs."""
    try:
        refs = _text(_PlainUnpickler(io.BytesIO(Path(src).read_bytes()), encoding="bytes").load())
    except (pickle.UnpicklingError, EOFError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, SourceError):
            raise
        raise SourceError(f"{src}: not a readable refs pickle ({exc})") from None
    expect(refs, list, str(src))
    tmp = temp_path(Path(dst))
    tmp.write_text(json.dumps(refs, ensure_ascii=False), encoding="utf-8")
    commit(tmp, Path(dst))
    return len(refs)
