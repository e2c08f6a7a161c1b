"""Language filter: keep English and Chinese captions, then remove characters that are neither.

Language is decided in four steps, cheapest first, and the step is recorded in `lang_by`:
1. "script": the writing system settles it. Kana means Japanese, Hangul Korean, Cyrillic/Arabic/... mean
   neither language (`und-<Script>`), Han ideographs outweighing the Latin words mean Chinese. Latin
   script alone settles nothing (French, German, Indonesian... are Latin too), so it goes on.
2. "words": English by its words. Character n-grams are weak evidence on a 3-word caption (seeded
   langdetect calls "Stainless steel kitchen sink" Finnish), while whole words are strong: with
   wordfreq's word frequencies in 27 Latin-script languages, a caption is English when at least
   WORD_COVERAGE of its words are common English words and the English word likelihood leads every
   other language's by WORD_MARGIN (log10). Words shared with French or Dutch ("portrait", "in") lean
   to no side; "de", "la", "mit" lean away from English. This step only ever answers "en".
3. "ngram": langdetect's own n-gram profiles scored over every n-gram of the text at once (naive Bayes,
   langdetect's smoothing). langdetect samples these same n-grams at random to approximate this
   posterior, so a clear result here is langdetect's result too (tests check this on a corpus), at
   ~0.2 ms instead of ~2-20 ms. Clear means: one language leads all others by a log-likelihood margin
   >= MARGIN, or every kept language trails the leader by that margin (the row is dropped either way;
   its `lang` is then the n-gram model's best guess, which langdetect might name differently).
4. "langdetect": seeded langdetect (seed 0, deterministic) for the close calls.
Results are cached per text in a bounded LRU, so repeated captions cost a lookup.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from typing import Annotated, TypeVar

import numpy as np
import pyarrow as pa
from pydantic import Field

from vlforge.filters.base import RowFilter, checked_params, string_values
from vlforge.filters.caption import count_words

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7af]")
_LATIN_WORD = re.compile(r"[A-Za-z\u00c0-\u024f]+")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f]")
_NOT_EN_ZH = re.compile("[^" + "".join([
    r"\x20-\x7e",  # ASCII
    r"\u00a0-\u024f",  # Latin-1 and Latin Extended letters and signs
    r"\u2000-\u206f\u20a0-\u20cf\u2100-\u214f",  # general punctuation, currency (€), letterlike (™)
    r"\u3000-\u303f",  # CJK symbols and punctuation
    r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",  # Han ideographs
    r"\uff01-\uff65",  # fullwidth ASCII and CJK brackets
]) + "]+")
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)*")  # letters, with inner apostrophes: "men's", "l'eau"

CACHE_SIZE = 50_000
MARGIN = 10.0  # log-likelihood lead (e^10 odds) at which the full n-gram evidence settles the language

# wordfreq's Latin-script languages ("small" lists: every word with Zipf frequency >= 3), English first.
WORD_LANGUAGES = ("en", "ca", "cs", "da", "de", "es", "fi", "fil", "fr", "hu", "id", "is", "it", "lt", "lv",
                  "ms", "nb", "nl", "pl", "pt", "ro", "sh", "sk", "sl", "sv", "tr", "vi")
WORD_TOP_OTHER = 5000  # most frequent words of each other language kept as evidence against English
WORD_FLOOR = 2.5  # Zipf frequency given to a word absent from a list (listed words are >= 3)
WORD_MARGIN = 0.5  # log10 lead of the English word likelihood over every other language (~3x odds)
WORD_COVERAGE = 0.75  # share of a caption's words that must be common English words


_Model = TypeVar("_Model", bound="_PerProcess")


class _PerProcess:
    """Built on first use, once per process (thread-safe), then shared by every caller."""

    _lock = threading.Lock()
    _instance: _PerProcess | None = None

    @classmethod
    def get(cls: type[_Model]) -> _Model:
        with _PerProcess._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance


class _WordModel(_PerProcess):
    """Per word: whether it is a common English word, and the English Zipf lead over each other language.

    The vocabulary is every listed English word plus the WORD_TOP_OTHER most frequent words of each
    other language (their function words, which tell them apart from English); other words are neutral.
    """

    def __init__(self) -> None:
        from wordfreq import available_languages, read_cBpack

        paths = available_languages("small")

        def zipf(lang: str, top: int | None = None) -> dict[str, float]:
            """word -> Zipf frequency; the list's bucket i holds words of frequency 10^(-i/100).

            Read without wordfreq's cache, which would keep every whole list in memory.
            """
            ranked: dict[str, float] = {}
            for bucket, words in enumerate(read_cBpack(paths[lang])):
                for word in words:
                    ranked.setdefault(word, 9.0 - bucket / 100)
                if top is not None and len(ranked) >= top:
                    break
            return ranked

        english, *others = WORD_LANGUAGES
        tables = [zipf(english)] + [zipf(lang, WORD_TOP_OTHER) for lang in others]
        vocabulary = sorted(set().union(*tables))
        self.row = {word: i for i, word in enumerate(vocabulary)}
        freq = np.full((len(vocabulary), len(WORD_LANGUAGES)), WORD_FLOOR, dtype=np.float32)
        for column, table in enumerate(tables):
            for word, value in table.items():
                freq[self.row[word], column] = value
        self.lead = freq[:, :1] - freq[:, 1:]
        self.english = np.array([word in tables[0] for word in vocabulary])

    def is_english(self, text: str) -> bool:
        """Enough common English words, and English leads every other language by WORD_MARGIN."""
        words = _WORD.findall(text.lower().replace("\u2019", "'"))
        rows = [self.row[word] for word in words if word in self.row]
        if not rows or self.english[rows].sum() < WORD_COVERAGE * len(words):
            return False
        return float(self.lead[rows].sum(axis=0).min()) >= WORD_MARGIN


class _NgramModel(_PerProcess):
    """langdetect's profiles, loaded once per process: a seeded factory and a log-probability matrix."""

    def __init__(self) -> None:
        from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

        self.factory = DetectorFactory()
        self.factory.load_profile(PROFILES_DIRECTORY)
        self.factory.set_seed(0)
        self.langs = list(self.factory.get_lang_list())
        ngrams = list(self.factory.word_lang_prob_map)
        self.row = {ngram: i for i, ngram in enumerate(ngrams)}
        probs = np.array([self.factory.word_lang_prob_map[ngram] for ngram in ngrams], dtype=np.float64)
        detector = self.factory.create()
        smoothing = detector.alpha / detector.BASE_FREQ  # langdetect's weight, without its random jitter
        self.log_prob = np.log(probs + smoothing).astype(np.float32)


def _normalise_code(code: str) -> str:
    """langdetect's 'zh-cn' / 'zh-tw' -> 'zh'; other codes unchanged."""
    return "zh" if code.startswith("zh") else code


def _by_script(text: str) -> str | None:
    """The language when the writing system settles it, else None (Latin script: ask the n-gram model)."""
    letters = sum(map(str.isalpha, text))
    if letters == 0:
        return "unknown"
    han, kana, hangul = len(_HAN.findall(text)), len(_KANA.findall(text)), len(_HANGUL.findall(text))
    if kana * 10 >= letters:
        return "ja"
    if hangul * 10 >= letters:
        return "ko"
    latin = len(_LATIN_LETTER.findall(text))
    other = letters - han - kana - hangul - latin
    if other > latin and other >= han:
        known = (_HAN, _KANA, _HANGUL, _LATIN_LETTER)
        first = next(ch for ch in text if ch.isalpha() and not any(p.match(ch) for p in known))
        return "und-" + unicodedata.name(first, "UNKNOWN").split()[0].title()
    if han and han >= len(_LATIN_WORD.findall(text)):
        return "zh"
    return None


@functools.lru_cache(maxsize=CACHE_SIZE)
def detect_language(text: str, keep: tuple[str, ...] = ("en", "zh")) -> tuple[str, str]:
    """(language code, step that decided it) for `text`; codes are langdetect's, with zh-cn/zh-tw -> zh.

    `keep` (the languages a caller keeps) only decides when a close call may skip langdetect.
    """
    lang = _by_script(text)
    if lang is not None:
        return lang, "script"
    if _WordModel.get().is_english(text):
        return "en", "words"
    return langdetect_language(text, keep)


def langdetect_language(text: str, keep: tuple[str, ...] = ("en", "zh")) -> tuple[str, str]:
    """Seeded langdetect's answer (steps "ngram" and "langdetect"), skipping langdetect where the n-grams are clear."""
    from langdetect.lang_detect_exception import LangDetectException

    model = _NgramModel.get()
    detector = model.factory.create()
    detector.append(text)
    detector.cleaning_text()
    ngrams = detector._extract_ngrams()  # langdetect's n-gram extraction, the same its detect() samples from
    if not ngrams:
        return "unknown", "ngram"
    scores = model.log_prob[[model.row[ngram] for ngram in ngrams]].sum(axis=0)
    second, first = np.argpartition(scores, -2)[-2:]
    best = _normalise_code(model.langs[first])
    if scores[first] - scores[second] >= MARGIN:
        return best, "ngram"
    kept_scores = [score for code, score in zip(model.langs, scores.tolist(), strict=True)
                   if _normalise_code(code) in keep]
    if best not in keep and all(scores[first] - score >= MARGIN for score in kept_scores):
        return best, "ngram"
    try:
        return _normalise_code(detector.detect()), "langdetect"
    except LangDetectException:
        return "unknown", "langdetect"


def strip_non_en_zh(text: str) -> str:
    """Remove characters that are neither English (Latin) nor Chinese, keeping digits and punctuation."""
    return _SPACE.sub(" ", _NOT_EN_ZH.sub(" ", text)).strip()


class LanguageFilter(RowFilter):
    """Keep captions in `keep` languages, strip other scripts' characters, drop what is left too short.

    Adds `lang` and `lang_by`, and replaces `caption` with the stripped text.
    """

    op = "language"
    sample_columns = ("lang",)

    @checked_params
    def __init__(self, keep: Annotated[tuple[str, ...], Field(min_length=1)] = ("en", "zh"),
                 min_chars: Annotated[int, Field(ge=0)] = 5, min_words: Annotated[int, Field(ge=0)] = 2, *,
                 column: str = "caption", name: str = "language") -> None:
        self.keep = tuple(keep)
        self.min_chars, self.min_words = min_chars, min_words
        self.column = column
        self.name = name

    def judge(self, text: str | None) -> tuple[str | None, str | None, str | None, str | None]:
        """(stripped text, lang, lang_by, reason) of one caption."""
        if not text:
            return text, None, None, "caption_missing"
        lang, by = detect_language(text, self.keep)
        if lang not in self.keep:
            return text, lang, by, f"lang={lang}"
        stripped = strip_non_en_zh(text)
        if len(stripped) < self.min_chars:
            return stripped, lang, by, f"caption_chars<{self.min_chars}"
        if count_words(stripped) < self.min_words:
            return stripped, lang, by, f"caption_words<{self.min_words}"
        return stripped, lang, by, None

    def inputs(self, batch: pa.Table) -> list[str | None]:
        return string_values(batch, self.column)

    def outputs(self) -> list[tuple[str, pa.DataType]]:
        return [(self.column, pa.string()), ("lang", pa.string()), ("lang_by", pa.string())]
