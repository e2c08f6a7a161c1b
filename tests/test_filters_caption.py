import pyarrow as pa
import pytest

from vlforge.filters.caption import CaptionFilter, clean_caption, count_words


@pytest.mark.parametrize(("raw", "cleaned"), [
    ("<p>A <b>red</b> car</p>", "A red car"),
    ("Fish &amp; chips &quot;fresh&quot;", 'Fish & chips "fresh"'),
    ("&amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt; text", "bold text"),  # double-escaped markup
    ("<!-- tracking --> Sunset<br/>over the sea", "Sunset over the sea"),
    ("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows", "The Mona Lisa doesn't have eyebrows"),  # mojibake
    ("Buy now at https://shop.example.com/p?id=1 or www.shop.org today", "Buy now at or today"),
    ("Contact me@example.com for prints", "Contact for prints"),
    ("Beach IMG_2034.JPG at dusk", "Beach at dusk"),
    ("DSC01234 a tree in autumn", "a tree in autumn"),
    ("photo-1.png red tulips", "red tulips"),
    ("Nice shoes *~*~*~* best price", "Nice shoes best price"),
    ("Amazing view!!!!!!", "Amazing view!"),
    ("Wait... what.......", "Wait... what."),
    ("[b]Bold[/b] {{template}} words", "Bold words"),
    ("  -- Mountain lake | -  ", "Mountain lake"),
    ("tab\tand\nnew  line", "tab and new line"),
    ("zero\u200bwidth\ufeff soft\u00adhyphen", "zerowidth softhyphen"),
    ("bell\x07 and null\x00 chars", "bell and null chars"),
    ("一只猫在沙发上睡觉。", "一只猫在沙发上睡觉。"),
    ("e.g. a dog, i.e. a pet", "e.g. a dog, i.e. a pet"),
    ("5 < 6 and 7 > 3", "5 < 6 and 7 > 3"),  # comparison signs are not tags
])
def test_clean_caption(raw, cleaned):
    assert clean_caption(raw) == cleaned


def test_replacement_characters_from_invalid_utf8_are_removed():
    # The reader decodes with errors="replace": invalid bytes arrive as U+FFFD.
    raw = b"Caf\xe9 au lait \xff\xfe in Paris".decode("utf-8", errors="replace")
    assert "\ufffd" in raw
    assert clean_caption(raw) == "Caf au lait in Paris"
    result = CaptionFilter().apply(pa.table({"caption": ["\ufffd\ufffd\ufffd", raw]}))
    assert result.reasons == ["caption_empty", None]


def test_count_words_counts_cjk_characters_individually():
    assert count_words("a red car") == 3
    assert count_words("一只猫") == 3
    assert count_words("iPhone 手机壳 case") == 5
    assert count_words("") == 0


def test_filter_columns_and_bounds():
    batch = pa.table({"uid": list("abcdef"), "caption": [
        "<i>A dog on a beach</i>", None, "Dog", "x" * 1200, "a " * 300, "Two words"]})
    result = CaptionFilter(min_words=2, max_words=256, min_chars=5, max_chars=1000).apply(batch)
    assert result.reasons == [None, "caption_missing", "caption_chars<5", "caption_chars>1000",
                              "caption_words>256", None]
    out = result.batch
    assert out["caption"].to_pylist()[0] == "A dog on a beach"
    assert out["caption_raw"].to_pylist()[0] == "<i>A dog on a beach</i>"
    assert out["caption_words"].to_pylist()[0] == 5 and out["caption_chars"].to_pylist()[0] == 16
    assert out["uid"].to_pylist() == list("abcdef")
    few = CaptionFilter(min_words=3).apply(pa.table({"caption": ["Two words"]}))
    assert few.reasons == ["caption_words<3"]


def test_one_megabyte_caption_is_rejected_before_cleaning():
    huge = "<b>" * 100_000 + "a" * 700_000 + "&amp;" * 50_000
    assert len(huge) > 1_000_000
    result = CaptionFilter(max_raw_chars=8192).apply(pa.table({"caption": [huge, "A fine caption"]}))
    assert result.reasons == ["caption_raw_chars>8192", None]
    assert result.batch["caption"].to_pylist()[0] is None
    assert result.batch["caption_raw"].to_pylist()[0] == huge


def test_long_tokens_within_the_raw_bound_are_left_alone():
    # Bounded repetition: an 8 KB token is too long to be a file name or an e-mail and is kept whole.
    token = "a" * 8000
    assert clean_caption(token + ".jpg") == token + ".jpg"
    assert clean_caption(token + "@host") == token + "@host"


def test_missing_column_and_empty_batch():
    assert CaptionFilter().apply(pa.table({"uid": ["a"]})).reasons == ["caption_missing"]
    empty = CaptionFilter().apply(pa.table({"caption": pa.array([], pa.string())}))
    assert empty.batch.num_rows == 0 and "caption_raw" in empty.batch.column_names


def test_inconsistent_bounds_are_named():
    with pytest.raises(ValueError, match="max_raw_chars"):
        CaptionFilter(max_chars=1000, max_raw_chars=500)


def test_non_text_caption_column_is_an_error_naming_it():
    with pytest.raises(ValueError, match="'caption' must be text"):
        CaptionFilter().apply(pa.table({"caption": [1, 2]}))


@pytest.mark.parametrize("bounds, field", [({"min_words": -1}, "min_words"), ({"max_words": 0}, "max_words"),
                                           ({"min_chars": -1}, "min_chars"), ({"max_chars": 0}, "max_chars")])
def test_bounds_out_of_range_are_refused_naming_the_field(bounds, field):
    with pytest.raises(ValueError, match=rf"{field}\n  Input should be greater than or equal to"):
        CaptionFilter(**bounds)
