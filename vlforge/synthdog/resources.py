"""Fonts, corpora and backgrounds: checked once by the driver, loaded once per worker process.

`prepare_resources` resolves what the user named (or the defaults), skips what is unusable with a
reason, and fails before any work when a language is left without text or fonts. It returns a
small JSON-able spec that work units carry; `load_resources` turns a spec into the loaded objects,
cached per process so a worker pays the loading cost once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from vlforge.synthdog.config import SynthConfig
from vlforge.synthdog.corpus import DEFAULT_CORPORA, Corpus, load_corpus
from vlforge.synthdog.fonts import FontFace, FontLibrary, assign_languages, read_faces, scan_fonts
from vlforge.synthdog.images import BUILTIN_PHOTOS, ImageCache, fingerprint, image_files

log = logging.getLogger(__name__)

SYSTEM_FONTS = Path("/usr/share/fonts")


def default_font_sources() -> list[str]:
    """Fonts that come with installed packages (Noto Sans CJK, matplotlib's DejaVu and STIX text
    faces; matplotlib's math and fallback fonts are not text fonts) plus system fonts when present."""
    import matplotlib
    import noto_cjk_sans_otc

    sources = [str(p) for p in sorted(Path(noto_cjk_sans_otc.__file__).parent.glob("*.tt[cf]"))]
    mpl = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    sources += [str(p) for pattern in ("DejaVu*.ttf", "STIXGeneral*.ttf") for p in sorted(mpl.glob(pattern))]
    if SYSTEM_FONTS.is_dir():
        sources.append(str(SYSTEM_FONTS))
    return sources


@dataclass
class ResourceReport:
    """What was skipped and why: counted in the run summary, each also logged as a warning."""

    fonts_skipped: list[tuple[str, str]] = field(default_factory=list)
    corpora_skipped: list[tuple[str, str]] = field(default_factory=list)
    fonts_by_lang: dict[str, int] = field(default_factory=dict)
    corpus_chars: dict[str, int] = field(default_factory=dict)
    backgrounds: int = 0

    def counts(self) -> dict[str, int]:
        return {"fonts_skipped": len(self.fonts_skipped), "corpora_skipped": len(self.corpora_skipped),
                "backgrounds": self.backgrounds,
                **{f"fonts_{lang}": n for lang, n in self.fonts_by_lang.items()}}


def prepare_resources(langs: list[str], config: SynthConfig, fonts: list[str] | None = None,
                      corpora: dict[str, list[str]] | None = None,
                      backgrounds: list[str] | None = None) -> tuple[dict, ResourceReport]:
    """Resolve and check resources for `langs`; raises ValueError naming what is missing."""
    report = ResourceReport()
    char_counts = {}
    corpus_sources = {}
    for lang in langs:
        sources = (corpora or {}).get(lang) or DEFAULT_CORPORA[lang]
        corpus, skipped = load_corpus(lang, sources)
        for _, reason in skipped:
            log.warning("corpus: skipping %s", reason)
        report.corpora_skipped += skipped
        char_counts[lang] = corpus.char_counts
        report.corpus_chars[lang] = len(corpus.text)
        corpus_sources[lang] = [s for s in sources if s not in {src for src, _ in skipped}]

    scan, cmaps = scan_fonts(fonts or default_font_sources())
    by_lang, unused = assign_languages(scan.faces, cmaps, char_counts, config.fonts.min_coverage)
    for where, reason in unused:
        log.warning("fonts: not using %s: %s", where, reason)
    report.fonts_skipped = scan.skipped + unused
    for lang in langs:
        report.fonts_by_lang[lang] = len(by_lang[lang])
        if not by_lang[lang]:
            raise ValueError(f"fonts: no font has the glyphs of the {lang} corpus "
                             f"(need {config.fonts.min_coverage:.0%} coverage; {len(scan.faces)} faces read)")

    background_sources = backgrounds or [BUILTIN_PHOTOS]
    photos = image_files(background_sources)
    if backgrounds and not photos:
        raise ValueError(f"backgrounds: no image files in {', '.join(backgrounds)}")
    report.backgrounds = len(photos)
    used = sorted({i for ids in by_lang.values() for i in ids})
    spec = {
        "fonts": [[scan.faces[i].path, scan.faces[i].index, scan.faces[i].name] for i in used],
        "fonts_by_lang": {lang: [used.index(i) for i in by_lang[lang]] for lang in langs},
        "corpora": corpus_sources,
        "backgrounds": background_sources,
        "backgrounds_fingerprint": fingerprint(photos),
    }
    return spec, report


@dataclass
class Resources:
    fonts: FontLibrary
    corpora: dict[str, Corpus]
    photos: list[str]
    images: ImageCache


_LOADED: dict[str, Resources] = {}


def load_resources(spec: dict, config: SynthConfig) -> Resources:
    """The loaded resources of a spec, built once per process."""
    key = json.dumps([spec, config.cache.model_dump(), config.canvas.size], sort_keys=True)
    hit = _LOADED.get(key)
    if hit is not None:
        return hit
    faces, cmaps = [], {}
    read: dict[str, dict[int, frozenset[int] | None]] = {}
    for path, index, name in spec["fonts"]:
        if path not in read:
            read[path] = {face.index: codepoints for face, codepoints, _ in read_faces(Path(path))}
        codepoints = read[path].get(index)
        if codepoints is None:
            raise ValueError(f"fonts: {path}#{index} changed since the run was prepared")
        face = FontFace(path, index, name)
        faces.append(face)
        cmaps[face] = codepoints
    corpora = {lang: load_corpus(lang, sources)[0] for lang, sources in spec["corpora"].items()}
    photos = image_files(spec["backgrounds"])
    if fingerprint(photos) != spec["backgrounds_fingerprint"]:
        raise ValueError("backgrounds: the image directories changed since the run was prepared")
    max_side = config.canvas.size or 2 * config.canvas.short_size[1]
    images = ImageCache(max_side, config.cache.background_mb * 2**20)
    fonts = FontLibrary(faces, cmaps, spec["fonts_by_lang"], config.cache.fonts)
    resources = Resources(fonts, corpora, photos, images)
    _LOADED.clear()  # one spec per process at a time keeps memory bounded
    _LOADED[key] = resources
    return resources
