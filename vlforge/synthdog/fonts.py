"""Fonts: find TTF/OTF/TTC/OTC files, read what every face can draw, hand out sized PIL fonts.

SynthDoG never checks glyph coverage (missing glyphs become boxes under a correct label) and skips
collections. Here every face of every file is read with fontTools; a face is kept only if its
character map is real Unicode text (not a placeholder font such as Last Resort, not a symbol font
whose map disagrees with its glyph names) and FreeType can load it. Which languages a face serves is
decided by the library from corpus coverage, and a line is only ever drawn with a face that maps all
of its characters.
"""

from __future__ import annotations

import logging
import string
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)

FONT_SUFFIXES = (".ttf", ".otf", ".ttc", ".otc")
_PRINTABLE_ASCII = range(0x21, 0x7F)
_PLACEHOLDER_SHARE = 0.5  # placeholder fonts map many code points onto few glyphs
_REFERENCE_SIZE = 100


@dataclass(frozen=True)
class FontFace:
    path: str
    index: int  # face number inside a collection, 0 for single fonts
    name: str

    @property
    def label(self) -> str:
        """`file.ttc#2`: what a sample records (no machine-specific directories)."""
        return f"{Path(self.path).name}#{self.index}"


@dataclass
class FontScan:
    faces: list[FontFace] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file or file#face, reason)


def font_files(sources: Iterable[str | Path]) -> list[Path]:
    """Font files under the given files/directories, sorted so every worker sees the same order."""
    found: set[Path] = set()
    for source in sources:
        path = Path(source)
        if path.is_dir():
            found.update(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FONT_SUFFIXES)
        elif path.is_file():
            found.add(path)
        else:
            raise FileNotFoundError(f"fonts: no such file or directory: {source}")
    return sorted(found)


def _face_count(path: Path) -> int:
    """1 for a single font; for a collection, the count in its header (`ttcf`, version, count)."""
    with open(path, "rb") as f:
        header = f.read(12)
    return int.from_bytes(header[8:12], "big") if header[:4] == b"ttcf" and len(header) == 12 else 1


def _open_face(path: Path, index: int):
    """One face, read lazily on its own, so a collection's tables are freed face by face."""
    from fontTools.ttLib import TTFont

    return TTFont(str(path), fontNumber=index, lazy=True)


def _codepoints(ttfont) -> dict[int, str]:
    """Unicode code point -> glyph name, without entries that point at .notdef."""
    cmap = ttfont.getBestCmap() or {}
    notdef = ttfont.getGlyphOrder()[0]
    return {cp: glyph for cp, glyph in cmap.items() if glyph != notdef}


def face_problem(cmap: Mapping[int, str]) -> str | None:
    """Why a face's character map cannot be trusted to draw what it claims, or None."""
    from fontTools.agl import AGL2UV

    if not cmap:
        return "no Unicode character map"
    glyphs = len(set(cmap.values()))
    if len(cmap) > 256 and glyphs < _PLACEHOLDER_SHARE * len(cmap):
        return f"placeholder font: {len(cmap)} code points share {glyphs} glyphs"
    wrong = [chr(cp) for cp in _PRINTABLE_ASCII if cp in cmap and AGL2UV.get(cmap[cp], cp) != cp]
    if wrong:
        return f"symbol encoding: {''.join(wrong[:8])!r} map to glyphs named for other characters"
    return None


def _face_name(ttfont, path: Path, index: int) -> str:
    name = ttfont["name"].getDebugName(4) if "name" in ttfont else None
    return name or f"{path.stem}#{index}"


def _read_face(path: Path, index: int) -> tuple[FontFace, frozenset[int] | None, str | None]:
    try:
        with _open_face(path, index) as ttfont:
            cmap = _codepoints(ttfont)
            face = FontFace(str(path), index, _face_name(ttfont, path, index))
        problem = face_problem(cmap)
        if problem is None:
            ImageFont.truetype(str(path), 16, index=index)
    except Exception as exc:  # noqa: BLE001 - a broken table or FreeType refusal skips the face
        reason = f"unreadable face ({type(exc).__name__}: {exc})"
        return FontFace(str(path), index, f"{path.stem}#{index}"), None, reason
    return face, (frozenset(cmap) if problem is None else None), problem


def read_faces(path: Path) -> list[tuple[FontFace, frozenset[int] | None, str | None]]:
    """Every face of a font file with its drawable code points, or a reason it cannot be used.

    Raises ValueError when the file is not a font at all.
    """
    try:
        count = _face_count(path)
        _open_face(path, 0).close()
    except Exception as exc:  # noqa: BLE001 - fontTools raises many types for garbage input
        raise ValueError(f"not a font ({type(exc).__name__}: {exc})") from None
    return [_read_face(path, index) for index in range(count)]


def scan_fonts(sources: Iterable[str | Path]) -> tuple[FontScan, dict[FontFace, frozenset[int]]]:
    """Usable faces (deduplicated by full name, first path in sorted order wins) and their code points."""
    scan = FontScan()
    cmaps: dict[FontFace, frozenset[int]] = {}
    interned: dict[frozenset[int], frozenset[int]] = {}  # collections repeat one map across faces
    seen_names: set[str] = set()
    for path in font_files(sources):
        try:
            faces = read_faces(path)
        except ValueError as exc:
            scan.skipped.append((str(path), str(exc)))
            log.warning("fonts: skipping %s: %s", path, exc)
            continue
        for face, codepoints, problem in faces:
            where = f"{path}#{face.index}"
            if problem is not None:
                scan.skipped.append((where, problem))
                log.warning("fonts: skipping %s: %s", where, problem)
                continue
            if face.name in seen_names:
                scan.skipped.append((where, f"duplicate of an earlier face named {face.name!r}"))
                continue
            seen_names.add(face.name)
            scan.faces.append(face)
            cmaps[face] = interned.setdefault(codepoints, codepoints)
    return scan, cmaps


def coverage(codepoints: frozenset[int], char_counts: Mapping[str, int]) -> float:
    """Share of a corpus's characters (by occurrence) that the face can draw; whitespace excluded."""
    total = drawable = 0
    for char, count in char_counts.items():
        if char.isspace():
            continue
        total += count
        if ord(char) in codepoints:
            drawable += count
    return drawable / total if total else 0.0


# The characters every face serving English must have, whatever the corpus says.
ENGLISH_REQUIRED = frozenset(map(ord, string.ascii_letters + string.digits + ".,;:!?'\"()-"))


def assign_languages(faces: list[FontFace], cmaps: Mapping[FontFace, frozenset[int]],
                     char_counts: Mapping[str, Mapping[str, int]], min_coverage: float,
                     ) -> tuple[dict[str, list[int]], list[tuple[str, str]]]:
    """Which faces serve each language (indices into `faces`), and the faces that serve none, with why."""
    by_lang: dict[str, list[int]] = {lang: [] for lang in char_counts}
    unused = []
    for i, face in enumerate(faces):
        shares = {}
        for lang, counts in char_counts.items():
            shares[lang] = coverage(cmaps[face], counts)
            required_ok = lang != "en" or cmaps[face] >= ENGLISH_REQUIRED
            if required_ok and shares[lang] >= min_coverage:
                by_lang[lang].append(i)
        if not any(i in ids for ids in by_lang.values()):
            shown = ", ".join(f"{lang} {share:.1%}" for lang, share in shares.items())
            unused.append((f"{face.path}#{face.index}", f"lacks glyphs: covers {shown} of corpus characters"))
    return by_lang, unused


# Per language: the glyph whose height decides legibility (x-height; an ideograph) and text whose stems
# give the stroke width. A face without them is measured with conservative defaults instead.
REFERENCE_GLYPHS = {"en": ("x", "nHlo"), "zh": ("中", "中国字")}
_FALLBACK_GLYPH, _FALLBACK_STROKE = 0.4, 0.03  # per pixel of font size


@dataclass(frozen=True)
class FaceMetrics:
    """A face's proportions per pixel of font size, measured once on a 100 px rendering."""

    line: float  # ascent + descent (what a line box is fitted to)
    glyph: float  # ink height of the language's reference glyph
    stroke: float  # mean stem width of the reference text: 2 x ink area / ink outline pixels


def _ink(font: ImageFont.FreeTypeFont, text: str) -> np.ndarray:
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (max(right - left, 1) + 2, max(bottom - top, 1) + 2))
    ImageDraw.Draw(image).text((1 - left, 1 - top), text, font=font, fill=255)
    return np.asarray(image) >= 128


def measure_face(font: ImageFont.FreeTypeFont, size: int, lang: str, codepoints: frozenset[int]) -> FaceMetrics:
    ascent, descent = font.getmetrics()
    glyph_char, stroke_text = REFERENCE_GLYPHS[lang]
    if not all(ord(c) in codepoints for c in glyph_char + stroke_text):
        return FaceMetrics((ascent + descent) / size, _FALLBACK_GLYPH, _FALLBACK_STROKE)
    rows = np.flatnonzero(_ink(font, glyph_char).any(axis=1))
    ink = _ink(font, stroke_text)
    inside = ink[1:-1, 1:-1] & ink[:-2, 1:-1] & ink[2:, 1:-1] & ink[1:-1, :-2] & ink[1:-1, 2:]
    outline = int(ink.sum()) - int(inside.sum())
    return FaceMetrics((ascent + descent) / size, float(rows[-1] - rows[0] + 1) / size,
                       2 * int(ink.sum()) / max(outline, 1) / size)


@dataclass
class SizedFont:
    """A PIL font at one pixel size, with the per-character advances the line fitter reuses."""

    font: ImageFont.FreeTypeFont
    size: int
    advances: dict[str, float] = field(default_factory=dict)

    def advance(self, char: str) -> float:
        width = self.advances.get(char)
        if width is None:
            width = self.advances[char] = self.font.getlength(char)
        return width


class FontLibrary:
    """Faces per language plus a bounded cache of sized fonts (loading a CJK face costs ~1 ms)."""

    def __init__(self, faces: list[FontFace], cmaps: Mapping[FontFace, frozenset[int]],
                 by_lang: Mapping[str, list[int]], cache_size: int) -> None:
        self.faces = faces
        self.cmaps = [cmaps[f] for f in faces]
        self.by_lang = {lang: list(ids) for lang, ids in by_lang.items()}
        self._cache: OrderedDict[tuple[int, int], SizedFont] = OrderedDict()
        self._cache_size = cache_size
        self._line_ratio: dict[int, float] = {}
        self._metrics: dict[tuple[int, str], FaceMetrics] = {}

    def faces_for(self, lang: str) -> list[int]:
        return self.by_lang.get(lang, [])

    def sized(self, face_id: int, size: int) -> SizedFont:
        key = (face_id, size)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        face = self.faces[face_id]
        font = ImageFont.truetype(face.path, size, index=face.index, layout_engine=ImageFont.Layout.BASIC)
        sized = self._cache[key] = SizedFont(font, size)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return sized

    def size_for_height(self, face_id: int, height: float) -> int:
        """The pixel size whose ascent + descent fits a line box of `height` (SynthDoG fits glyphs to it)."""
        ratio = self._line_ratio.get(face_id)
        if ratio is None:
            ascent, descent = self.sized(face_id, _REFERENCE_SIZE).font.getmetrics()
            ratio = self._line_ratio[face_id] = (ascent + descent) / _REFERENCE_SIZE
        return max(1, int(height / ratio))

    def metrics(self, face_id: int, lang: str) -> FaceMetrics:
        key = (face_id, lang)
        hit = self._metrics.get(key)
        if hit is None:
            font = self.sized(face_id, _REFERENCE_SIZE).font
            hit = self._metrics[key] = measure_face(font, _REFERENCE_SIZE, lang, self.cmaps[face_id])
        return hit
