"""Caption cleanup: fix mojibake, strip HTML, URLs, e-mails, control characters and irregular patterns.

Qwen-VL strips HTML tags and irregular patterns from web captions. Oversized captions are rejected before
any regex runs, and every pattern has bounded repetition, so a hostile 1 MB caption costs one len().
The cleaned text replaces `caption`; the original stays in `caption_raw`.
"""

from __future__ import annotations

import html
import re
from typing import Annotated

import ftfy
import pyarrow as pa
from pydantic import Field

from vlforge.filters.base import RowFilter, checked_params, set_column, string_values

_FILE_EXT = r"(?:jpe?g|png|gif|webp|bmp|tiff?|heic|svg|mp4|mov|pdf)"
_TLD = r"(?:com|net|org|info|biz|edu|gov|io|co|uk|de|fr|ru|jp|cn|au|ca|nl|it|es|br|in)"
_REMOVE = re.compile("|".join([
    r"</?[a-zA-Z!][^<>]{0,300}>",  # HTML/XML tags and comments
    r"\[/?[a-zA-Z]{1,10}(?:=[^\]]{0,100})?\]",  # BBCode [b], [url=...]
    r"\{\{[^{}]{0,100}\}\}",  # template markup {{...}}
    r"&#?[a-zA-Z0-9]{1,10};",  # entities left after unescaping
    r"(?:https?|ftp)://\S{1,2048}",  # URLs with a scheme
    r"\bwww\.\S{1,2048}",
    rf"\b(?:[a-zA-Z0-9-]{{1,63}}\.){{1,5}}{_TLD}\b(?:/\S{{0,2048}})?",  # bare domains
    r"[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,5}",  # e-mail addresses
    rf"\b[\w-]{{1,100}}\.{_FILE_EXT}\b",  # file names: IMG_2034.JPG, photo-1.png
    r"\b(?:IMG|DSC|DSCN|DSCF|DCIM|PXL|MVIMG|VID|PANO|SAM)[_-]?\d{3,}\w{0,20}",  # camera file stems
]), re.IGNORECASE)
# C0/C1 controls, soft hyphen, zero-width and bidi marks, BOM, and U+FFFD (what invalid UTF-8 became)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064"
                      r"\ufeff\ufffd]")
_REPEATED_SYMBOL = re.compile(r"([^\w\s.])\1{2,}|\.{4,}")  # "!!!" -> "!", "....." -> "." (keeps "...")
_SYMBOL_RUN = re.compile(r"[^\w\s]{4,}")  # "*~*~*", "|-|-|" -> removed
_SPACE = re.compile(r"\s+")
_EDGE_JUNK = re.compile(r"^[\s,;:|/\\\-–—_*#~]+|[\s,;:|/\\\-–—_*#~]+$")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u3040-\u30ff\uac00-\ud7af]")


def clean_caption(text: str) -> str:
    """The cleaned caption; the empty string if nothing is left. Callers bound the input length."""
    # ASCII is never mojibake: ftfy (a third of the cost) changes it only at line breaks (\r) and terminal
    # escapes (\x1b); the control characters it removes from the rest, _CONTROL removes below too
    if not text.isascii() or "\r" in text or "\x1b" in text:
        text = ftfy.fix_text(text, unescape_html=False)
    for _ in range(3):  # double-escaped entities: "&amp;lt;b&amp;gt;"
        unescaped = html.unescape(text)
        if unescaped == text:
            break
        text = unescaped
    text = _REMOVE.sub(" ", text)
    text = _CONTROL.sub("", text)
    text = _REPEATED_SYMBOL.sub(lambda match: match.group(0)[0], text)
    text = _SYMBOL_RUN.sub(" ", text)
    text = _SPACE.sub(" ", text)
    return _EDGE_JUNK.sub("", text)


def count_words(text: str) -> int:
    """Whitespace-separated words, with each CJK character counted as one word (they have no spaces)."""
    n_cjk = len(_CJK.findall(text))
    return n_cjk + len(_CJK.sub(" ", text).split()) if n_cjk else len(text.split())


class CaptionFilter(RowFilter):
    """Clean captions and drop those outside the length bounds.

    Adds `caption_raw` (the input), `caption_chars`, `caption_words`, and replaces `caption` with the
    cleaned text. Captions longer than `max_raw_chars` are rejected before cleaning.
    """

    op = "caption"
    private_columns = ("caption_raw",)
    sample_columns = ("caption_raw",)  # the manifest has no room for free text; the sample keeps it

    @checked_params
    def __init__(self, min_words: Annotated[int, Field(ge=0)] = 2, max_words: Annotated[int, Field(ge=1)] | None = 256,
                 min_chars: Annotated[int, Field(ge=0)] = 5, max_chars: Annotated[int, Field(ge=1)] = 1000,
                 max_raw_chars: Annotated[int, Field(ge=1)] = 8192, *, column: str = "caption",
                 name: str = "caption") -> None:
        if max_raw_chars < max_chars:
            raise ValueError(f"max_raw_chars ({max_raw_chars}) must be >= max_chars ({max_chars})")
        self.min_words, self.max_words = min_words, max_words
        self.min_chars, self.max_chars, self.max_raw_chars = min_chars, max_chars, max_raw_chars
        self.column = column
        self.name = name

    def judge(self, raw: str | None) -> tuple[str | None, int | None, int | None, str | None]:
        """(cleaned, chars, words, reason) of one caption."""
        if raw is None:
            return None, None, None, "caption_missing"
        if len(raw) > self.max_raw_chars:
            return None, None, None, f"caption_raw_chars>{self.max_raw_chars}"
        cleaned = clean_caption(raw)
        chars, words = len(cleaned), count_words(cleaned)
        if not cleaned:
            reason = "caption_empty"
        elif chars < self.min_chars:
            reason = f"caption_chars<{self.min_chars}"
        elif chars > self.max_chars:
            reason = f"caption_chars>{self.max_chars}"
        elif words < self.min_words:
            reason = f"caption_words<{self.min_words}"
        elif self.max_words is not None and words > self.max_words:
            reason = f"caption_words>{self.max_words}"
        else:
            reason = None
        return cleaned, chars, words, reason

    def inputs(self, batch: pa.Table) -> list[str | None]:
        return string_values(batch, self.column)

    def outputs(self) -> list[tuple[str, pa.DataType]]:
        return [(self.column, pa.string()), ("caption_chars", pa.int64()), ("caption_words", pa.int64())]

    def prepare(self, batch: pa.Table, values: list) -> pa.Table:
        return set_column(batch, "caption_raw", pa.array(values, pa.string()))
