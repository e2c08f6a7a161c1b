"""Samples (rendered, synthdog or cleaned) -> Qwen-VL fine-tuning records, so Qwen-VL's finetune.py reads vlforge data.

Chat samples are parsed back into their turns. Any other task becomes a conversation by alternating turns:
each unsupervised run of segments is a user turn, each supervised run an assistant turn (one leading space
dropped: the answer no longer continues its prompt's line), and each image slot becomes
`Picture N: <img>PATH</img>\\n` as Qwen-VL writes images. A sample that starts supervised (the `text` task,
pure autoregression) gets an empty user turn first, because finetune.py drops a leading non-user turn; the
text is then learnt as the answer to an empty prompt, which keeps the loss on all of it.
"""

from itertools import groupby

from vlforge.formats.chat import parse_chatml
from vlforge.formats.sample import Sample
from vlforge.formats.segments import IMAGE_SLOT, Segment

# Qwen-VL's tokenizer stores an image path's UTF-8 bytes in the 256 positions between <img> and </img> and
# raises on a longer one, so finetune.py could not read the record.
MAX_IMAGE_PATH_BYTES = 256


def _task_turns(segments: list[Segment]) -> list[dict]:
    turns = []
    for train, run in groupby(segments, key=lambda s: s.train):
        text = "".join(s.text for s in run)
        if train and not turns:
            turns.append({"from": "user", "value": ""})
        if train:
            turns.append({"from": "assistant", "value": text.removeprefix(" ")})
        else:
            turns.append({"from": "user", "value": text})
    return turns


def _fill_images(turns: list[dict], image_paths: list[str], labelled: bool) -> list[dict]:
    """The k-th `<img></img>` becomes `<img>PATH_k</img>` where the text is `labelled` already (chat values
    carry their `Picture k: ` labels), else `Picture k: <img>PATH_k</img>\\n`."""
    slots = sum(turn["value"].count(IMAGE_SLOT) for turn in turns)
    if slots != len(image_paths):
        raise ValueError(f"sample has {slots} image slots but {len(image_paths)} image paths were given")
    for path in image_paths:
        if len(path.encode("utf-8")) > MAX_IMAGE_PATH_BYTES or "<" in path or ">" in path:
            raise ValueError(f"image path {path!r}: Qwen-VL's tokenizer takes at most {MAX_IMAGE_PATH_BYTES} "
                             "UTF-8 bytes and no '<' or '>' between <img> and </img>")
    images = iter(enumerate(image_paths, start=1))
    filled = []
    for turn in turns:
        first, *rest = turn["value"].split(IMAGE_SLOT)
        value = first
        for piece in rest:
            n, path = next(images)
            value += (f"<img>{path}</img>" if labelled else f"Picture {n}: <img>{path}</img>\n") + piece
        filled.append({"from": turn["from"], "value": value})
    return filled


def to_qwenvl_conversation(sample: Sample, image_paths: list[str], sample_id: str) -> dict:
    """A sample as a Qwen-VL fine-tuning record {"id", "conversations": [{"from": "user"|"assistant", "value"}]};
    image_paths are where its images 0, 1, ... were written, as finetune.py should open them. ValueError when
    they do not fit the sample or Qwen-VL, or a chat sample is not ChatML."""
    if sample.task == "chat":
        turns = _fill_images(parse_chatml(sample.text()), image_paths, labelled=True)
    else:
        turns = _fill_images(_task_turns(sample.segments), image_paths, labelled=False)
    return {"id": sample_id, "conversations": turns}
