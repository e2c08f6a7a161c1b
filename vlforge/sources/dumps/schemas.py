"""The canonical columns of a dump row, the known dump schemas (LAION, DataComp, COYO, img2dataset) and
how one input file is described (`InputFile`) and cut into work (`RowRange`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# Score columns a dump may bring, all read as float64.
SCORE_COLUMNS = ("clip_score", "clip_l14_score", "punsafe", "pwatermark", "nsfw_score", "watermark_score",
                 "aesthetic_score")
# What a cleaned sample's JSON `scores` carries of the dump's own: its scores, its NSFW tag and the CLIP model
# that scored it (a schema constant).
SAMPLE_SCORES = (*SCORE_COLUMNS, "nsfw", "clip_model")
# Text columns a dump may bring besides url and caption.
TEXT_COLUMNS = ("nsfw", "license", "sha256", "status", "error_message", "key")
FIELDS = ("uid", "url", "caption", "width", "height", *SCORE_COLUMNS, *TEXT_COLUMNS)
MAX_URL_CHARS = 4096


@dataclass(frozen=True)
class Schema:
    """Canonical name -> the dump's column, and constants every row of such a dump carries."""

    name: str
    columns: Mapping[str, str]
    signature: tuple[str, ...]  # columns whose presence identifies the schema
    constants: Mapping[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ("url", "caption")  # canonical fields a file of this schema must have
    # the uid is made up from row positions (img2dataset's per-folder keys): no identity to compare across rows
    positional_ids: bool = False
    # canonical columns that must never reach a manifest: they would shadow the manifest's own columns
    private_columns: frozenset[str] = frozenset()


SCHEMAS: dict[str, Schema] = {s.name: s for s in (
    Schema("img2dataset", {"uid": "key", "key": "key", "url": "url", "caption": "caption",
                           "width": "original_width", "height": "original_height", "sha256": "sha256",
                           "status": "status", "error_message": "error_message"},
           ("key", "url", "status", "error_message"), required=("url",),  # runs without captions are common
           positional_ids=True, private_columns=frozenset({"key", "status", "error_message"})),
    Schema("datacomp", {"uid": "uid", "url": "url", "caption": "text", "width": "original_width",
                        "height": "original_height", "clip_score": "clip_b32_similarity_score",
                        "clip_l14_score": "clip_l14_similarity_score", "sha256": "sha256"},
           ("uid", "url", "text", "clip_b32_similarity_score"), {"clip_model": "ViT-B-32"}),
    Schema("coyo", {"uid": "id", "url": "url", "caption": "text", "width": "width", "height": "height",
                    "clip_score": "clip_similarity_vitb32", "clip_l14_score": "clip_similarity_vitl14",
                    "nsfw_score": "nsfw_score_opennsfw2", "watermark_score": "watermark_score",
                    "aesthetic_score": "aesthetic_score_laion_v2"},
           ("id", "url", "text", "clip_similarity_vitb32"), {"clip_model": "ViT-B-32"}),
    Schema("laion", {"uid": "SAMPLE_ID", "url": "URL", "caption": "TEXT", "width": "WIDTH", "height": "HEIGHT",
                     "clip_score": "similarity", "nsfw": "NSFW", "license": "LICENSE", "punsafe": "punsafe",
                     "pwatermark": "pwatermark"},
           ("URL", "TEXT"), {"clip_model": "ViT-B-32"}),
    Schema("generic", {"uid": "uid", "url": "url", "caption": "caption", "width": "width", "height": "height"},
           ("url", "caption")),
)}


class InputError(ValueError):
    """An input file that cannot be read as a whole: names the file and what is wrong with it."""


@dataclass(frozen=True)
class InputFile:
    """One input file and how to read it. `columns` maps canonical names to the file's columns."""

    path: str
    format: str  # the reader's key in `readers.READERS`
    source: str
    file_index: int
    schema: str
    columns: Mapping[str, str]
    constants: Mapping[str, str]
    names: tuple[str, ...] = ()  # text formats: the header, or the names given for a headerless file
    header: bool = True
    companion: str | None = None  # the file its reader reads beside it (`Reader.companion`), e.g. a shard's tar


@dataclass(frozen=True)
class RowRange:
    """Rows [row_start, row_start + row_count) of a file; text formats also know the byte offset of row_start."""

    row_start: int
    row_count: int
    byte_start: int = 0


@dataclass(frozen=True)
class ColumnOverrides:
    """Which column holds each canonical field, for tables no known schema describes (CLI --url-col ...)."""

    schema: str = "auto"
    columns: Mapping[str, str] = field(default_factory=dict)  # canonical -> column
    names: tuple[str, ...] = ()  # column names of a headerless CSV/TSV
    header: bool = True


# ---------------------------------------------------------------- schema detection


def detect_schema(names: list[str] | tuple[str, ...]) -> str:
    """The first known schema whose signature columns are all present."""
    present = set(names)
    for schema in SCHEMAS.values():
        if all(c in present for c in schema.signature):
            return schema.name
    raise InputError(
        f"no known schema matches columns {sorted(present)}; name the columns with --url-col and --caption-col "
        f"(or `columns:` in the recipe source)")


def resolve_columns(names: list[str] | tuple[str, ...], overrides: ColumnOverrides, where: str
                    ) -> tuple[str, dict[str, str], dict[str, str]]:
    """(schema name, canonical -> column for the columns this file has, constants); errors name the file."""
    if overrides.schema != "auto" and overrides.schema not in SCHEMAS:
        raise InputError(f"{where}: schema: unknown {overrides.schema!r}; expected auto or one of {sorted(SCHEMAS)}")
    unknown = sorted(set(overrides.columns) - set(FIELDS))
    if unknown:
        raise InputError(f"{where}: columns: unknown field(s) {unknown}; expected some of {list(FIELDS)}")
    present = set(names)
    for canonical, column in overrides.columns.items():
        if column not in present:
            raise InputError(f"{where}: no column {column!r} (given for field {canonical}); "
                             f"columns present: {sorted(present)}")
    if overrides.schema != "auto":
        schema = SCHEMAS[overrides.schema]
    elif {"url", "caption"} <= set(overrides.columns):
        schema = SCHEMAS["generic"]
    else:
        try:
            schema = SCHEMAS[detect_schema(names)]
        except InputError as exc:
            raise InputError(f"{where}: {exc}") from None
    mapping = {**schema.columns, **overrides.columns}
    for required in schema.required:
        if mapping[required] not in present:
            raise InputError(f"{where}: missing column {mapping[required]!r} for field {required} "
                             f"(schema {schema.name}; columns present: {sorted(present)})")
    return schema.name, {k: v for k, v in mapping.items() if v in present}, dict(schema.constants)
