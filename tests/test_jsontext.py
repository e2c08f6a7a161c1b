"""One parser for untrusted JSON: bad text and absurd nesting are errors with a reason, never RecursionError."""

import pytest

from vlforge.formats.jsontext import JsonTextError, parse_json


def test_values_parse_and_bad_text_says_where() -> None:
    assert parse_json('{"a": [1, 2]}') == {"a": [1, 2]}
    with pytest.raises(JsonTextError, match=r"^Expecting ',' delimiter at column 10$") as info:
        parse_json('{"a": [1 2]}')
    assert not info.value.too_deep
    with pytest.raises(JsonTextError, match=r"^not UTF-8$"):
        parse_json(b'{"a": "\xff"}')


def test_nesting_past_the_recursion_limit_is_too_deep_not_a_crash() -> None:
    with pytest.raises(JsonTextError, match=r"^nested too deeply$") as info:
        parse_json("[" * 200_000 + "]" * 200_000)
    assert info.value.too_deep
