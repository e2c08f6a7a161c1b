"""clean_caption skips ftfy on plain ASCII; these are the ASCII inputs ftfy does change, and mojibake."""

import pytest

from vlforge.filters.caption import clean_caption


@pytest.mark.parametrize(("raw", "expected"), [
    ("line one\r\nline\rtwo", "line one line two"),  # ftfy turns a lone \r into a line break, not nothing
    ("\x1b[31mred\x1b[0m alert text", "red alert text"),  # terminal colour escapes go whole
    ("bell\x07 and\x0b tab\tend", "bell and tab end"),  # controls: removed either way
    ("&lt;b&gt;bold&lt;/b&gt; text", "bold text"),
    ("A red cat next to a blue dog", "A red cat next to a blue dog"),
    ("Caf\u00c3\u00a9 au lait", "Caf\u00e9 au lait"),  # UTF-8 read as Latin-1 is still repaired
    ("\u00e2\u20ac\u0153quoted\u00e2\u20ac\u009d text", "\"quoted\" text"),  # repaired, then uncurled
])
def test_clean_caption(raw, expected):
    assert clean_caption(raw) == expected
