"""Typed access to the fields of one input record; every failure is a FieldError naming the field."""

from typing import Any

from vlforge.formats.errors import FieldError, describe

# Tokens that change how the trainer reads a sample (image slots, ChatML turns, end of text):
# they may never come from input text.
CONTROL_TOKENS = ("<img>", "</img>", "<imgpad>", "<|im_start|>", "<|im_end|>", "<|endoftext|>")
# Grounding markup: written by the templates, never taken from plain captions, questions or answers.
MARKUP_TOKENS = ("<ref>", "</ref>", "<box>", "</box>", "<quad>", "</quad>")

LANGUAGES = {"en": "English", "zh": "Chinese"}
BOX_FORMATS = ("xyxy", "xywh")


def require(record: dict, key: str, kind: type, field: str | None = None) -> Any:
    """record[key], which must exist and be of `kind` (bool never counts as a number)."""
    field = field or key
    if key not in record:
        raise FieldError(field, "missing")
    value = record[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise FieldError(field, f"must be {kind.__name__}, got {type(value).__name__} {describe(value)}")
    return value


def check_text(value: str, field: str, forbidden: tuple[str, ...]) -> str:
    """`value` unchanged if it is not blank and holds none of the `forbidden` tokens."""
    if not value.strip():
        raise FieldError(field, "must not be empty")
    for token in forbidden:
        if token in value:
            raise FieldError(field, f"must not contain the special token {token}")
    return value


def plain_text(record: dict, key: str, field: str | None = None) -> str:
    """A non-empty string field free of special tokens and grounding markup (captions, questions, ...)."""
    field = field or key
    return check_text(require(record, key, str, field), field, CONTROL_TOKENS + MARKUP_TOKENS)


def image_path(record: dict) -> str:
    """The record's single "image" path (resolved and opened by the render pipeline, not here)."""
    path = require(record, "image", str)
    if not path.strip():
        raise FieldError("image", "must not be empty")
    return path


def language(record: dict) -> str:
    """The caption language name used in prompts: "English" (default, lang "en") or "Chinese" (lang "zh")."""
    lang = record.get("lang", "en")
    if lang not in LANGUAGES:
        raise FieldError("lang", f"must be one of {sorted(LANGUAGES)}, got {describe(lang)}")
    return LANGUAGES[lang]


def box_format(record: dict) -> str:
    """How the record's boxes are written: "xyxy" (default) or COCO's "xywh"."""
    value = record.get("box_format", "xyxy")
    if value not in BOX_FORMATS:
        raise FieldError("box_format", f"must be one of {list(BOX_FORMATS)}, got {describe(value)}")
    return value
