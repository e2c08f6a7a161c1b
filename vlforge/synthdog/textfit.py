"""Fill one line box with corpus text, whole units only, drawn by one font.

SynthDoG appends characters until one overflows, so English words break anywhere without a hyphen,
and never asks whether the font has the glyph. Here a line takes the longest run of whole units
(words, or Chinese characters) that fits; a unit the font cannot draw, or one wider than the whole
box, is skipped, so the label is exactly the text on the page.
"""

from __future__ import annotations

from dataclasses import dataclass

from vlforge.synthdog.corpus import Corpus
from vlforge.synthdog.fonts import SizedFont

MAX_SKIPPED_UNITS = 64  # give up on a box after this many unusable units (the box stays empty)


@dataclass(frozen=True)
class FittedLine:
    text: str
    next_pos: int  # where the next line continues in the corpus
    width: float  # advance width in pixels


def fit_line(corpus: Corpus, pos: int, font: SizedFont, codepoints: frozenset[int],
             width: float) -> FittedLine:
    """The longest run of whole units from `pos` whose rendered width is at most `width`."""
    pieces: list[str] = []
    ends: list[int] = []
    used = 0.0
    pending_space = False
    skipped = 0
    resume = pos
    space = font.advance(" ")
    for unit, end in corpus.units(pos):
        if unit.isspace():
            pending_space = bool(pieces)
            resume = end
            continue
        cost = sum(font.advance(c) for c in unit) + (space if pending_space else 0.0)
        drawable = all(ord(c) in codepoints for c in unit)
        if drawable and used + cost <= width:
            if pending_space:
                pieces.append(" ")
                ends.append(ends[-1])
            pieces.append(unit)
            ends.append(end)
            used += cost
            pending_space = False
            continue
        if drawable and pieces:
            break  # the line is full
        skipped += 1  # not drawable, or wider than the whole box
        resume = end
        if skipped >= MAX_SKIPPED_UNITS:
            break
    # Kerning can make the real width differ from the sum of advances: trim until it fits.
    text = "".join(pieces)
    actual = font.font.getlength(text) if text else 0.0
    while pieces and actual > width:
        pieces.pop()
        ends.pop()
        while pieces and pieces[-1] == " ":
            pieces.pop()
            ends.pop()
        text = "".join(pieces)
        actual = font.font.getlength(text) if text else 0.0
    return FittedLine(text, ends[-1] if pieces else resume, actual)
