import random

import pyarrow as pa
import pytest

from vlforge.filters.language import LanguageFilter, detect_language, strip_non_en_zh

ENGLISH = "A red sports car parked in front of a modern building"
CHINESE = "北京故宫的秋天，红墙黄瓦"
OTHERS = {
    "Une photo d'un chien brun qui court sur la plage": "lang=fr",
    "Ein Hund läuft am Strand entlang": "lang=de",
    "東京の夜景がとても綺麗です": "lang=ja",
    "서울의 밤 풍경이 아름답습니다": "lang=ko",
    "Собака бежит по пляжу": "lang=und-Cyrillic",
    "كلب يجري على الشاطئ": "lang=und-Arabic",
}


def test_keeps_english_and_chinese_and_names_the_rest():
    captions = [ENGLISH, CHINESE, *OTHERS]
    result = LanguageFilter().apply(pa.table({"caption": captions}))
    assert result.reasons == [None, None, *OTHERS.values()]
    assert result.batch["lang"].to_pylist()[:2] == ["en", "zh"]
    assert result.batch["lang_by"].to_pylist()[1] == "script"
    assert result.batch["caption"].to_pylist()[:2] == [ENGLISH, CHINESE]


def test_mixed_english_chinese_is_kept_and_labelled_by_the_dominant_language():
    result = LanguageFilter().apply(pa.table({"caption": [
        "iPhone 14 Pro 手机壳 透明 防摔", "Vintage poster of Shanghai 上海 in the 1930s"]}))
    assert result.reasons == [None, None]
    assert result.batch["lang"].to_pylist() == ["zh", "en"]
    assert result.batch["caption"].to_pylist() == [
        "iPhone 14 Pro 手机壳 透明 防摔", "Vintage poster of Shanghai 上海 in the 1930s"]


def test_characters_of_other_scripts_are_removed_after_detection():
    assert strip_non_en_zh("A cat 🐱 on a sofa ❤ so cute") == "A cat on a sofa so cute"
    assert strip_non_en_zh("Café «crème» — 10€, 猫咪，好可爱！") == "Café «crème» — 10€, 猫咪，好可爱！"
    assert strip_non_en_zh("Hello мир world") == "Hello world"
    assert strip_non_en_zh("东京の夜景") == "东京 夜景"
    result = LanguageFilter().apply(pa.table({"caption": ["Hello мир world, a nice sunny day"]}))
    assert result.reasons == [None]
    assert result.batch["caption"].to_pylist() == ["Hello world, a nice sunny day"]


def test_captions_left_too_short_after_stripping_are_dropped():
    result = LanguageFilter(min_words=5).apply(pa.table({"caption": ["Hello мир world, a nice day"]}))
    assert result.reasons == [None]
    result = LanguageFilter(min_words=6).apply(pa.table({"caption": ["Hello мир world, a nice day"]}))
    assert result.reasons == ["caption_words<6"]
    assert result.batch["caption"].to_pylist() == ["Hello world, a nice day"]
    result = LanguageFilter(min_chars=30).apply(pa.table({"caption": ["Hello мир world, a nice day"]}))
    assert result.reasons == ["caption_chars<30"]


def test_missing_empty_and_symbol_only_captions():
    result = LanguageFilter().apply(pa.table({"caption": [None, "", "12345 !!"]}))
    assert result.reasons == ["caption_missing", "caption_missing", "lang=unknown"]


def test_repeated_captions_are_served_from_the_cache():
    text = "A small wooden boat on a quiet lake at dawn, mist over the water"
    detect_language(text, ("en", "zh"))
    hits = detect_language.cache_info().hits
    LanguageFilter().apply(pa.table({"caption": [text] * 5}))
    assert detect_language.cache_info().hits == hits + 5


def _corpus(n_per_language: int) -> list[str]:
    """pydoc prose plus random word strings in 12 Latin-script languages: many close calls."""
    import pydoc_data.topics

    from wordfreq import top_n_list

    prose = " ".join(pydoc_data.topics.topics.values()).replace("\n", " ").split(". ")
    texts = [s.strip()[:120] for s in prose[:400] if len(s.strip()) > 10]
    rng = random.Random(0)
    for lang in ["en", "fr", "de", "es", "it", "nl", "pt", "pl", "sv", "id", "tr", "ro"]:
        words = top_n_list(lang, 2000)
        for _ in range(n_per_language):
            texts.append(" ".join(rng.choice(words) for _ in range(rng.randint(2, 10))))
    return texts


def test_agrees_with_seeded_langdetect():
    from langdetect import DetectorFactory, detect

    texts = _corpus(25)
    saved = DetectorFactory.seed
    DetectorFactory.seed = 0
    try:
        expected = [("zh" if code.startswith("zh") else code) for code in map(detect, texts)]
    finally:
        DetectorFactory.seed = saved
    keep = ("en", "zh")
    got = [detect_language.__wrapped__(t, keep) for t in texts]
    # Same keep/drop decision everywhere; the same label wherever either side names a kept language.
    pairs = list(zip(texts, expected, got, strict=True))
    decisions = [(t, e, g) for t, e, g in pairs if (e in keep) != (g[0] in keep)]
    assert decisions == []
    labels = [(t, e, g) for t, e, g in pairs if e in keep and e != g[0]]
    assert labels == []
    assert {g[1] for g in got} == {"ngram", "langdetect"}  # both paths exercised
    assert sum(g[0] == "en" for g in got) > 400


@pytest.mark.parametrize("text", [ENGLISH, "Stainless steel kitchen sink", "Chat noir sur le canapé"])
def test_detection_is_deterministic(text):
    first = detect_language.__wrapped__(text)
    assert all(detect_language.__wrapped__(text) == first for _ in range(3))
