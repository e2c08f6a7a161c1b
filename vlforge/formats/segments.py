"""Segments: the spans of a sample's text, each supervised (`train`) or not.

Two forms, one for each direction. Templates (`formats.tasks`, `formats.chat`) write the JSON form,
{"text": str, "train": bool}, which the pipelines store in KEY.json as it is. Readers (the trainer, evaluation,
export) get `Segment`s in a typed `formats.sample.Sample`, whose `sample_from_wds` is the one conversion.
"""

from dataclasses import dataclass

# Where the next image goes; the trainer expands it to <img> + 256 image positions + </img>.
IMAGE_SLOT = "<img></img>"


@dataclass(frozen=True)
class Segment:
    """A span of a sample read back from a shard; `train` says whether it is supervised."""

    text: str
    train: bool


def segment(text: str, train: bool) -> dict:
    """One segment in the JSON form templates write."""
    return {"text": text, "train": train}


def join_text(segments: list[dict]) -> str:
    """The whole text of segments in the JSON form."""
    return "".join(s["text"] for s in segments)
