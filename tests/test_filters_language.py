import random

import pyarrow as pa
import pytest

from vlforge.filters.language import LanguageFilter, detect_language, langdetect_language, strip_non_en_zh

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


# A labelled evaluation set of short web captions, written for this test (LAION-style titles and alt texts).
ENGLISH_CAPTIONS = [
    "An astronaut portrait in a space suit", "Stainless steel kitchen sink", "Red cotton t-shirt for men",
    "Vintage wooden chair", "Black leather office chair with armrests", "Close-up of a cat sleeping on a sofa",
    "Wedding cake with white roses", "Mountain lake at sunset", "Modern living room interior design",
    "Women's running shoes, size 8", "Handmade ceramic coffee mug", "Aerial view of a beach resort",
    "Portrait of a young woman with red hair", "Fresh vegetables at a farmers market",
    "Kids birthday party decorations", "Gold plated necklace with pendant", "Old barn in the countryside",
    "Children playing in the park", "Abstract oil painting on canvas", "Wooden dining table set for six",
    "Blue denim jacket", "Street food in Bangkok", "Christmas tree with lights and ornaments",
    "Luxury hotel bedroom", "Bathroom vanity with double sink", "Garden hose reel cart",
    "Dog running on the grass", "Chocolate chip cookies on a plate", "Wireless bluetooth headphones",
    "Solar panels on a house roof", "Floral print summer dress", "Pencil sketch of an old man",
    "Hiking trail through the forest", "New York City skyline at night", "Baby girl in a pink dress",
    "Set of 4 kitchen knives", "Watercolor painting of flowers", "Silver ring with blue stone",
    "Family photo on the beach", "Desk lamp with adjustable arm", "Camping tent in the mountains",
    "Retro poster design template", "Leather wallet for men", "Sliced bread on a cutting board",
    "Yellow taxi in the street", "Glass vase with tulips", "Snow covered pine trees",
    "Men's slim fit dress shirt", "Outdoor patio furniture set", "Laptop on a wooden desk",
    "Chicken curry with rice", "Vintage car at a car show", "Ice cream cone", "Brick wall texture background",
    "Cute puppy with a ball", "Rustic farmhouse kitchen", "Bride and groom dancing",
    "Cartoon illustration of a happy sun", "Wall clock with roman numerals", "Plastic storage box with lid",
    "Pizza with mozzarella and basil", "Café latte with heart art", "Villa with private pool",
    "Piano keys close up", "Tomato pasta with parmesan",
]
FOREIGN_CAPTIONS = {
    "fr": ["Une photo d'un chien brun qui court sur la plage", "Robe d'été à fleurs pour femme",
           "Chaise en bois vintage", "Coucher de soleil sur la mer", "Gâteau au chocolat fait maison",
           "Maison de campagne avec jardin", "Portrait d'une jeune femme", "Chat noir sur le canapé"],
    "de": ["Ein Hund läuft am Strand entlang", "Rotes Baumwoll T-Shirt für Herren", "Küche mit Edelstahlspüle",
           "Sonnenuntergang über den Bergen", "Holztisch mit vier Stühlen", "Kinder spielen im Garten",
           "Frische Brötchen vom Bäcker"],
    "es": ["Perro corriendo en la playa", "Camiseta roja de algodón para hombre", "Silla de madera antigua",
           "Atardecer en la montaña", "Casa moderna con piscina", "Niños jugando en el parque",
           "Tarta de chocolate casera"],
    "it": ["Cane che corre sulla spiaggia", "Tramonto sul mare", "Sedia in legno vintage",
           "Cucina moderna con isola", "Ritratto di una giovane donna", "Vestito da sposa bianco",
           "Pasta fatta in casa con pomodoro"],
    "pt": ["Cachorro correndo na praia", "Camiseta vermelha de algodão masculina", "Pôr do sol na praia",
           "Cadeira de madeira antiga", "Bolo de chocolate com morango", "Casa com piscina e jardim"],
    "nl": ["Een rode fiets in de stad", "Hond rent op het strand", "Houten tafel met stoelen",
           "Zonsondergang aan zee", "Moderne keuken met kookeiland", "Kinderen spelen in het park"],
    "id": ["Anjing berlari di pantai", "Kaos merah untuk pria", "Kursi kayu antik",
           "Pemandangan gunung di pagi hari", "Rumah minimalis dengan taman", "Nasi goreng dengan telur"],
    "vi": ["Con chó chạy trên bãi biển", "Áo thun cotton màu đỏ cho nam", "Hoàng hôn trên biển",
           "Ghế gỗ cổ điển", "Bánh mì thịt nướng", "Phòng khách hiện đại"],
    "tr": ["Sahilde koşan köpek", "Erkek kırmızı pamuklu tişört", "Ahşap sandalye", "Deniz manzaralı ev",
           "Çikolatalı ev yapımı pasta", "Parkta oynayan çocuklar"],
    # Latin-script languages without a wordfreq list: their words must not pass for English either
    "sw": ["Mbwa anakimbia ufukweni", "Nyumba nzuri karibu na bahari", "Gari jekundu barabarani"],
    "et": ["Punane auto tänaval", "Koer jookseb rannas", "Puidust tool ja laud"],
    "sq": ["Qeni vrapon në plazh", "Shtëpi me pishinë dhe kopsht"],
    "cy": ["Ci yn rhedeg ar y traeth", "Tŷ gwyn ger y môr"],
    "af": ["Hond hardloop op die strand", "Rooi motor in die straat"],
}
CHINESE_CAPTIONS = ["北京故宫的秋天，红墙黄瓦", "不锈钢厨房水槽", "男士红色纯棉T恤", "复古木椅", "海边的日落",
                    "可爱的小狗在草地上奔跑", "iPhone 14 Pro 手机壳 透明 防摔", "2023新款 女装 连衣裙"]


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


def test_short_english_captions_are_kept_and_other_languages_are_not():
    languages = [lang for lang, _ in (detect_language.__wrapped__(t) for t in ENGLISH_CAPTIONS)]
    missed = [(t, lang) for t, lang in zip(ENGLISH_CAPTIONS, languages, strict=True) if lang != "en"]
    assert len(missed) <= 0.05 * len(ENGLISH_CAPTIONS), missed  # recall >= 0.95
    foreign = [t for texts in FOREIGN_CAPTIONS.values() for t in texts]
    assert len(ENGLISH_CAPTIONS) >= 40 and len(foreign) >= 40
    kept = [t for t in foreign if detect_language.__wrapped__(t)[0] in ("en", "zh")]
    assert len(kept) <= 0.05 * len(foreign), kept
    assert {detect_language.__wrapped__(t)[0] for t in CHINESE_CAPTIONS} == {"zh"}


@pytest.mark.parametrize("text", ["An astronaut portrait in a space suit", "Stainless steel kitchen sink"])
def test_english_words_decide_where_seeded_langdetect_errs(text):
    assert langdetect_language(text)[0] != "en"  # French and Finnish by n-grams
    assert detect_language.__wrapped__(text) == ("en", "words")


@pytest.mark.parametrize("text", ["Portrait d'une jeune femme", "Chat noir sur le canapé", "Hond rent op het strand"])
def test_words_shared_with_english_do_not_make_a_caption_english(text):
    assert detect_language.__wrapped__(text)[1] != "words"


def _corpus(n_per_language: int) -> list[tuple[str, str]]:
    """(source language, text): pydoc prose plus random word strings in 12 Latin-script languages, many close calls."""
    import pydoc_data.topics

    from wordfreq import top_n_list

    prose = " ".join(pydoc_data.topics.topics.values()).replace("\n", " ").split(". ")
    texts = [("en", s.strip()[:120]) for s in prose[:400] if len(s.strip()) > 10]
    rng = random.Random(0)
    for lang in ["en", "fr", "de", "es", "it", "nl", "pt", "pl", "sv", "id", "tr", "ro"]:
        words = top_n_list(lang, 2000)
        for _ in range(n_per_language):
            texts.append((lang, " ".join(rng.choice(words) for _ in range(rng.randint(2, 10)))))
    return texts


def test_ngram_steps_agree_with_seeded_langdetect():
    from langdetect import DetectorFactory, detect

    texts = [text for _, text in _corpus(25)]
    saved = DetectorFactory.seed
    DetectorFactory.seed = 0
    try:
        expected = [("zh" if code.startswith("zh") else code) for code in map(detect, texts)]
    finally:
        DetectorFactory.seed = saved
    keep = ("en", "zh")
    got = [langdetect_language(t, keep) for t in texts]
    # Same keep/drop decision everywhere; the same label wherever either side names a kept language.
    pairs = list(zip(texts, expected, got, strict=True))
    decisions = [(t, e, g) for t, e, g in pairs if (e in keep) != (g[0] in keep)]
    assert decisions == []
    labels = [(t, e, g) for t, e, g in pairs if e in keep and e != g[0]]
    assert labels == []
    assert {g[1] for g in got} == {"ngram", "langdetect"}  # both paths exercised
    assert sum(g[0] == "en" for g in got) > 400


def test_english_by_words_only_for_english_text():
    corpus = _corpus(25)
    by_words = [(lang, text) for lang, text in corpus if detect_language.__wrapped__(text)[1] == "words"]
    assert [(lang, text) for lang, text in by_words if lang != "en"] == []
    assert len(by_words) > 300  # most English prose and word strings are settled by their words


@pytest.mark.parametrize("text", [ENGLISH, "Stainless steel kitchen sink", "Chat noir sur le canapé"])
def test_detection_is_deterministic(text):
    first = detect_language.__wrapped__(text)
    assert all(detect_language.__wrapped__(text) == first for _ in range(3))


@pytest.mark.parametrize("params, message", [({"keep": ()}, r"keep\n  Tuple should have at least 1 item"),
                                             ({"min_chars": -1}, r"min_chars\n  Input should be greater than"),
                                             ({"min_words": -2}, r"min_words\n  Input should be greater than")])
def test_empty_keep_and_negative_bounds_are_refused_naming_the_field(params, message):
    with pytest.raises(ValueError, match=message):
        LanguageFilter(**params)
