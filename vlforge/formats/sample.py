"""One typed sample from any vlforge shard, so the trainer and export read rendered, synthdog and cleaned shards alike.

- rendered task shards (`vlforge render`):
  `KEY.json` with `task`, `source`, `segments`; images `KEY.0.jpg`, `KEY.1.jpg`, ...
- synthdog shards: `KEY.json` with `task: "ocr"` and its `segments`; the image is `KEY.jpg`
- cleaned shards (`vlforge clean`): `KEY.jpg|png|webp` + `KEY.txt` (the caption) + `KEY.json` (provenance, no
  segments): read as a stage-1 caption, `<img></img>` unsupervised and the caption supervised
"""

import re
from dataclasses import dataclass, field

from vlforge.formats.errors import FieldError
from vlforge.formats.jsontext import JsonTextError, parse_json
from vlforge.formats.segments import IMAGE_SLOT, Segment
from vlforge.formats.tasks import render
from vlforge.shards.members import is_image

CLEANED_TASK = "caption_stage1"
_NUMBERED = re.compile(r"^(\d+)\.(\w+)$", re.ASCII)  # `0.jpg`: image 0 of a rendered sample
# the trainer places images by these tokens: anywhere but in an `<img></img>` slot they would misplace images
_IMAGE_TOKENS = ("<img>", "</img>", "<imgpad>")


@dataclass
class Sample:
    key: str
    task: str
    source: str
    segments: list[Segment]
    # (extension, encoded bytes), in the order of the `<img></img>` slots; export names its files by the extension
    image_files: list[tuple[str, bytes]]
    meta: dict = field(default_factory=dict)
    shard: str = ""  # the tar it was read from; "" for a sample built in memory

    @property
    def images(self) -> list[bytes]:
        """The encoded images, in the order of the slots."""
        return [data for _, data in self.image_files]

    def image_slots(self) -> int:
        return sum(s.text.count(IMAGE_SLOT) for s in self.segments)

    def text(self) -> str:
        """The sample's whole text."""
        return "".join(s.text for s in self.segments)

    def where(self) -> str:
        """Shard and key, as errors about this sample name it."""
        return _where(self.shard, self.key)


class SampleError(ValueError):
    """A shard sample that cannot be used; `reason` is a short counter name, the message names shard and key."""

    def __init__(self, reason: str, where: str, detail: str) -> None:
        super().__init__(f"{where}: {detail}")
        self.reason = reason


def sample_images(sample: dict) -> list[tuple[str, bytes]]:
    """(extension, bytes) of images 0, 1, ... in order; a single unnumbered image (OCR, cleaned pairs) is image 0."""
    numbered = sorted((int(m.group(1)), m.group(2), sample[k])
                      for k in sample if (m := _NUMBERED.match(k)) and is_image(m.group(2)))
    if numbered:
        return [(ext, data) for _, ext, data in numbered]
    return [(ext, sample[ext]) for ext in sorted(sample) if "." not in ext and is_image(ext)]


def _where(shard: object, key: object) -> str:
    return f"{shard or '?'}: sample {key or '?'}"


def _segments(value: object, where: str) -> list[Segment]:
    """Segments in the JSON form (KEY.json's, or a template's) -> `Segment`s, checked: the one conversion."""
    if not isinstance(value, list) or not value:
        raise SampleError("bad_segments", where, "`segments` must be a non-empty list")
    out = []
    for i, seg in enumerate(value):
        if not (isinstance(seg, dict) and isinstance(seg.get("text"), str) and isinstance(seg.get("train"), bool)):
            raise SampleError("bad_segments", where, f"segments[{i}] must be {{'text': str, 'train': bool}}")
        if any(t in seg["text"].replace(IMAGE_SLOT, "") for t in _IMAGE_TOKENS):
            raise SampleError("bad_segments", where, f"segments[{i}] has an image token outside {IMAGE_SLOT}")
        out.append(Segment(seg["text"], seg["train"]))
    return out


def _caption_segments(txt: bytes, key: str, where: str) -> list[Segment]:
    """A cleaned pair's caption through the stage-1 caption template, which also refuses control tokens."""
    try:
        caption = txt.decode("utf-8")
        segments = render(CLEANED_TASK, {"image": key, "caption": caption}, [(1, 1)])
    except UnicodeDecodeError as exc:
        raise SampleError("bad_text", where, "caption (.txt) is not UTF-8") from exc
    except FieldError as exc:
        raise SampleError("bad_text", where, f"caption (.txt): {exc.message}") from exc
    return _segments(segments, where)


def sample_from_wds(wds: dict) -> Sample:
    """A webdataset sample dict (undecoded bytes) -> Sample; SampleError for anything unusable."""
    where = _where(wds.get("__url__"), wds.get("__key__"))
    key = wds.get("__key__")
    if not isinstance(key, str) or not key:
        raise SampleError("no_key", where, "not a sample (no __key__)")
    record: dict = {}
    if "json" in wds:
        try:
            record = parse_json(wds["json"])
        except JsonTextError as exc:
            raise SampleError("bad_json", where, f"KEY.json does not parse ({exc})") from exc
        if not isinstance(record, dict):
            raise SampleError("bad_json", where, "KEY.json is not an object")
    if "segments" in record:
        task = record.get("task")
        if not isinstance(task, str) or not task:
            raise SampleError("bad_json", where, "KEY.json has segments but no `task`")
        segments = _segments(record["segments"], where)
    elif "txt" in wds:
        task, segments = CLEANED_TASK, _caption_segments(wds["txt"], key, where)
    else:
        raise SampleError("no_text", where, "neither KEY.json with `segments` nor KEY.txt: not a vlforge sample")
    source = record.get("source")
    meta = record.get("meta")
    return Sample(key=key, task=task, source=source if isinstance(source, str) else "",
                  segments=segments, image_files=sample_images(wds),
                  meta=meta if isinstance(meta, dict) else {}, shard=str(wds.get("__url__", "")))
