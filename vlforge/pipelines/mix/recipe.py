"""Mix recipes: which sources, rendered as which task, in which proportion; validated before any work.

Each source names its task, its language, a `weight` (share of the weighted part of the mix) or an exact
`count`, and `from`: the adapter that reads it with that adapter's own options (see vlforge.sources).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from vlforge.config import load_model
from vlforge.formats.tasks import TASKS
from vlforge.pipelines.executor import SessionOptions
from vlforge.sources.annotations import ADAPTERS, AdapterOptionsUnion


class MixError(ValueError):
    """A mix that cannot run (bad recipe, missing or malformed source, changed rerun); says what and where."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MixSource(_Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]+$")]
    task: Literal[TASKS]  # type: ignore[valid-type]
    lang: Literal["en", "zh", "auto"] = "auto"  # auto: the sample's own `lang`, English when it has none
    weight: Annotated[float, Field(gt=0)] | None = None
    count: Annotated[int, Field(ge=1)] | None = None
    repeat: bool = False  # may a source be drawn more often than it has records (new shuffle each pass)
    source: Annotated[AdapterOptionsUnion, Field(alias="from", discriminator="adapter")]

    @model_validator(mode="after")
    def _check(self) -> MixSource:
        if (self.weight is None) == (self.count is None):
            raise ValueError("give exactly one of weight and count")
        tasks = ADAPTERS[self.source.adapter].TASKS
        if tasks is not None and self.task not in tasks:
            raise ValueError(f"adapter {self.source.adapter} gives tasks {list(tasks)}, not {self.task!r}")
        return self


class ImageSpec(_Strict):
    max_side: Annotated[int, Field(ge=32)] | None = 448  # longer side cap; None: never resize
    quality: Annotated[int, Field(ge=1, le=100)] = 95  # JPEG quality when an image must be re-encoded


class ShardSpec(_Strict):
    max_samples: Annotated[int, Field(ge=1)] | None = 10_000
    max_bytes: Annotated[int, Field(ge=1)] | None = 1 << 30


class MixRecipe(_Strict, SessionOptions):
    name: str
    description: str = ""
    seed: int = 0
    total: Annotated[int, Field(ge=1)] | None = None  # default: the largest mix that repeats no weighted source
    samples_per_unit: Annotated[int, Field(ge=1)] = 2000
    phash: bool = True  # perceptual hashes for near-duplicate reports and --exclude-eval
    # cross-source duplicates are always reported; sha256/phash also drops them from later-listed sources
    drop_duplicates: Literal["none", "sha256", "phash"] = "none"
    exclude_eval: list[Path] = Field(default_factory=list)
    allow_outside_paths: bool = False  # image files may lie outside their source's image folders (or JSONL's)
    images: ImageSpec = ImageSpec()
    shards: ShardSpec = ShardSpec()
    sources: list[MixSource] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> MixRecipe:
        names = [s.name for s in self.sources]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"source names must be unique; repeated: {repeated}")
        return self


def load_mix_recipe(path: str | Path, overrides: Mapping[str, Any] | None = None) -> MixRecipe:
    """YAML (safe_load) -> dotted CLI overrides (None: a flag not given) -> MixRecipe (`vlforge.config.load_model`);
    every error names the file and the field path."""
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    return load_model(path, MixRecipe, given, MixError)
