"""Stage-3 conversations: Qwen-VL and LLaVA records -> one normalised form -> ChatML segments, and back.

The normalised form is Qwen-VL's own: [{"from": "user"|"assistant", "value": str}], images written
`Picture N: <img>PATH</img>\\n` inside the values.
"""

import re

from vlforge.formats.errors import FieldError, describe
from vlforge.formats.record import CONTROL_TOKENS, check_text, require
from vlforge.formats.segments import IMAGE_SLOT, segment

SYSTEM_MESSAGE = "You are a helpful assistant."
ROLES = {"user": "user", "assistant": "assistant", "human": "user", "gpt": "assistant"}  # LLaVA: human/gpt
LLAVA_IMAGE = "<image>"

IMAGE_RE = re.compile(r"<img>([^<>]+)</img>")
TURN_RE = re.compile(r"<\|im_start\|>(system|user|assistant)\n(.*?)<\|im_end\|>\n", re.S)
# The image tags are checked by IMAGE_RE; the other control tokens may not appear in a value at all.
_FORBIDDEN = tuple(t for t in CONTROL_TOKENS if t not in ("<img>", "</img>"))


def _llava_images(record: dict) -> list[str]:
    images = record.get("image", [])
    images = [images] if isinstance(images, str) else images
    if not isinstance(images, list) or not all(isinstance(p, str) and p.strip() for p in images):
        raise FieldError("image", f"must be a path or a list of paths, got {describe(record.get('image'))}")
    return images


def _check_images(value: str, field: str) -> None:
    leftover = IMAGE_RE.sub("", value)
    if "<img>" in leftover or "</img>" in leftover:
        raise FieldError(field, "malformed <img>PATH</img>: each needs a non-empty path and a closing </img>")


def _place_llava_images(value: str, images: list[str], used: int, field: str) -> str:
    """`<image>` placeholders -> `Picture N: <img>PATH</img>\\n` at the start of the value, where LLaVA itself
    moves them; N counts through the conversation (`used` images came before this value)."""
    count = value.count(LLAVA_IMAGE)
    if not count:
        return value
    if used + count > len(images):
        raise FieldError(field, f"{LLAVA_IMAGE} placeholder without a matching 'image'")
    pictures = "".join(f"Picture {n + 1}: <img>{images[n]}</img>\n" for n in range(used, used + count))
    return pictures + value.replace(LLAVA_IMAGE, "").strip()


def to_conversation(record: dict) -> list[dict]:
    """The record's turns in Qwen-VL form: Qwen-VL records pass through, LLaVA roles and images are mapped."""
    turns = require(record, "conversations", list)
    if not turns:
        raise FieldError("conversations", "must not be empty")
    images = _llava_images(record)
    conversation, used = [], 0
    for i, turn in enumerate(turns):
        field = f"conversations[{i}]"
        if not isinstance(turn, dict):
            raise FieldError(field, f"must be an object, got {describe(turn)}")
        role = require(turn, "from", str, f"{field}.from")
        if role not in ROLES:
            raise FieldError(f"{field}.from", f"must be 'user' or 'assistant', got {describe(role)}")
        value = check_text(require(turn, "value", str, f"{field}.value"), f"{field}.value", _FORBIDDEN)
        value = _place_llava_images(value, images, used, f"{field}.value")
        used += turn["value"].count(LLAVA_IMAGE)
        _check_images(value, f"{field}.value")
        conversation.append({"from": ROLES[role], "value": value})
    if used != len(images):
        raise FieldError("image", f"{len(images)} images given but {used} {LLAVA_IMAGE} placeholders")
    if conversation[0]["from"] != "user":
        raise FieldError("conversations[0].from", "a conversation must start with a user turn")
    if all(turn["from"] == "user" for turn in conversation):
        raise FieldError("conversations", "has no assistant turn to learn from")
    return conversation


def image_paths(conversation: list[dict]) -> list[str]:
    """Paths of the `<img>PATH</img>` tags, in order: the sample's images 0, 1, ..."""
    return [path for turn in conversation for path in IMAGE_RE.findall(turn["value"])]


def chat_segments(conversation: list[dict]) -> list[dict]:
    """ChatML with the loss mask of Qwen-VL's finetune.py: `<|im_start|>`, `<|im_end|>\\n` and assistant
    values are supervised; the system message, user turns and role names are not.
    Image paths become `<img></img>`: the sample's images go there in order."""
    segments = [
        segment("<|im_start|>", True),
        segment(f"system\n{SYSTEM_MESSAGE}", False),
        segment("<|im_end|>\n", True),
    ]
    for turn in conversation:
        value = IMAGE_RE.sub(IMAGE_SLOT, turn["value"])
        segments.append(segment("<|im_start|>", True))
        if turn["from"] == "user":
            segments += [segment(f"user\n{value}", False), segment("<|im_end|>\n", True)]
        else:
            segments += [segment("assistant\n", False), segment(f"{value}<|im_end|>\n", True)]
    return segments


def parse_chatml(text: str) -> list[dict]:
    """The user/assistant turns of a ChatML text written by chat_segments (the system turn is dropped)."""
    turns, pos = [], 0
    for match in TURN_RE.finditer(text):
        if match.start() != pos:
            break
        pos = match.end()
        if match[1] != "system":
            turns.append({"from": match[1], "value": match[2]})
    if pos != len(text) or not turns:
        raise ValueError(f"not a ChatML conversation (unparsable from character {pos})")
    return turns
