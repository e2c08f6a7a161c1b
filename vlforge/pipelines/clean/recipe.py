"""Cleaning recipes: YAML validated with pydantic before any work, turned into filter chains per source.

A recipe names its sources (datasets), the filter steps before and after download, img2dataset's
download options, dedup and sharding. Every step's parameters are checked against its operator's
constructor (an unknown key or a bad value fails with the step's name and the field), and every
source's chain is built once at load time, so a bad value stops the run before any work.

Per-source differences (a stricter CLIP threshold for one dataset, Chinese for LAION-zh) are
overrides keyed by step name under `sources.<name>.filters`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from vlforge.config import ConfigError, field_errors, load_model
from vlforge.filters.base import Filter
from vlforge.filters.registry import needs_image, operators
from vlforge.pipelines.executor import SessionOptions
from vlforge.sources.download import DownloadOptions
from vlforge.sources.dumps.schemas import FIELDS, SCHEMAS, ColumnOverrides

OPS = operators()
NEEDS_IMAGE = needs_image()
RANKING_OPS = [op for op, cls in OPS.items() if cls.ranks_by is not None]  # take `top_fraction`
IMAGE_VALIDATORS = [op for op, cls in OPS.items() if cls.validates_image]


class RecipeError(ConfigError):
    """A recipe that cannot run; the message names the field."""


def _params_model(cls: type[Filter]) -> type[BaseModel]:
    """A pydantic model of the operator's constructor keywords (minus `name`, which is the step name)."""
    hints = typing.get_type_hints(cls.__init__, include_extras=True)  # keep Annotated[..., Field(...)] bounds
    fields: dict[str, Any] = {}
    for pname, param in inspect.signature(cls.__init__).parameters.items():
        if pname in ("self", "name") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[pname] = (hints.get(pname, Any), default)
    config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    return create_model(f"{cls.__name__}Params", __config__=config, **fields)


PARAMS = {op: _params_model(cls) for op, cls in OPS.items()}


def _check_params(op: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        PARAMS[op].model_validate(params)
    except ValidationError as exc:
        raise ValueError(field_errors(exc)) from None
    return params


class Step(BaseModel):
    """One filter step: `op` picks the operator, the other keys are its parameters."""

    model_config = ConfigDict(extra="allow", frozen=True)

    op: Literal[tuple(OPS)]  # type: ignore[valid-type]
    name: str = ""
    enabled: bool = True
    top_fraction: float | None = Field(default=None, gt=0, le=1)
    actors: int = Field(default=0, ge=0)
    num_gpus: float = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _validate(self) -> Step:
        if not self.name:
            object.__setattr__(self, "name", self.op)
        if self.top_fraction is not None and OPS[self.op].ranks_by is None:
            raise ValueError(f"top_fraction: only the {' and '.join(RANKING_OPS)} op"
                             f"{'s take' if len(RANKING_OPS) > 1 else ' takes'} a top fraction")
        if self.actors and OPS[self.op].stateful:
            raise ValueError(f"actors: op {self.op} remembers earlier rows; a pool shared by every unit would make "
                             f"its result depend on scheduling (and break resume), so it runs in each unit")
        _check_params(self.op, self.params)
        return self

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def ranks_by(self) -> str | None:
        """The score column a top-fraction step ranks rows by: its `column:`, else its op's `ranks_by`."""
        return self.params.get("column", OPS[self.op].ranks_by)

    def merged(self, override: Mapping[str, Any]) -> Step:
        """This step with a source's overrides applied (validated again)."""
        return Step.model_validate({**self.model_dump(), **override})


def _check_order(source: str, before: list[Step], after: list[Step]) -> None:
    """Every source validates its downloaded bytes, and each step runs after the ops it needs
    (`Filter.validates_image`, `Filter.needs_steps_before`)."""
    if not any(OPS[s.op].validates_image for s in after):
        wanted = " or ".join(f"`{op}`" for op in IMAGE_VALIDATORS)
        raise ValueError(f"after_download: source {source} has no enabled {wanted} step; downloaded "
                         f"bytes must be validated before they are written")
    chain = [*before, *after]
    for i, step in enumerate(chain):
        for needed in OPS[step.op].needs_steps_before:
            if not any(s.op == needed for s in chain[:i]):
                later = next((s for s in chain[i:] if s.op == needed), None)
                where = "no enabled step" if later is None else f"step {later.name} ({needed}) after it"
                phase = "before_download" if i < len(before) else "after_download"
                raise ValueError(f"{phase}: step {step.name} ({step.op}) needs `{needed}` before it, "
                                 f"but source {source} has {where}; put `{needed}` first")


class SourceSpec(BaseModel):
    """A dataset: where its files are, how to read them, and its filter overrides."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_name: Literal[("auto", *SCHEMAS)] = Field(default="auto", alias="schema")  # type: ignore[valid-type]
    columns: dict[str, str] = Field(default_factory=dict)
    names: list[str] = Field(default_factory=list)
    header: bool = True
    inputs: list[str] = Field(default_factory=list)
    filters: dict[str, dict[str, Any]] = Field(default_factory=dict)
    note: str = ""

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown field(s) {unknown}; expected some of {list(FIELDS)}")
        return value

    def overrides(self) -> ColumnOverrides:
        return ColumnOverrides(schema=self.schema_name, columns=dict(self.columns), names=tuple(self.names),
                               header=self.header)


class DedupSpec(BaseModel):
    """Exact dedup over the whole run, first occurrence in input order kept."""

    model_config = ConfigDict(extra="forbid")

    url: bool = True
    uid: bool = True
    sha256: bool = True
    partition_rows: int = Field(default=32_000_000, ge=1)  # hashes held in memory at once per partition


class ShardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_samples: int | None = Field(default=10_000, ge=1)
    max_bytes: int | None = Field(default=1 << 30, ge=1)


class CleanRecipe(SessionOptions):
    """A whole cleaning run. CLI flags override the matching keys (`run.recipe_overrides`, dotted keys)."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    rows_per_unit: int = Field(default=5000, ge=1)
    sources: dict[str, SourceSpec] = Field(min_length=1)
    before_download: list[Step] = Field(default_factory=list)
    after_download: list[Step] = Field(default_factory=list)
    download: DownloadOptions = Field(default_factory=DownloadOptions)
    dedup: DedupSpec = Field(default_factory=DedupSpec)
    shards: ShardSpec = Field(default_factory=ShardSpec)

    @model_validator(mode="after")
    def _validate(self) -> CleanRecipe:
        names = [s.name for s in self.steps()]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"step names must be unique; repeated: {repeated} (give each a `name:`)")
        pooled = [s.name for s in self.steps() if s.actors]
        if pooled and self.executor == "processes":
            raise ValueError(f"executor processes: steps {pooled} run on Ray actors (actors:); use executor ray")
        for i, step in enumerate(self.before_download):
            if step.op in NEEDS_IMAGE:
                raise ValueError(f"before_download.{i} ({step.name}): op {step.op} needs the image; "
                                 f"move it to after_download")
        by_name = {s.name: s for s in self.steps()}
        for source, spec in self.sources.items():
            for step_name, override in spec.filters.items():
                if step_name not in by_name:
                    raise ValueError(f"sources.{source}.filters.{step_name}: no step named {step_name!r}; "
                                     f"steps: {names}")
                bad = sorted(set(override) & {"op", "name", "actors", "num_gpus"})
                if by_name[step_name].actors:  # one actor pool serves all sources: one threshold each
                    bad = sorted(set(override) - {"enabled", "thresholds"})
                    if isinstance(override.get("thresholds"), Mapping):
                        bad.append("thresholds as a mapping")
                if bad:
                    raise ValueError(f"sources.{source}.filters.{step_name}: {bad} cannot differ per source")
                try:
                    by_name[step_name].merged(override)
                except ValidationError as exc:
                    raise ValueError(f"sources.{source}.filters.{step_name}: {field_errors(exc)}") from None
        for source in self.sources:
            _check_order(source, self.source_steps(source, "before_download"),
                         self.source_steps(source, "after_download"))
        return self

    def steps(self) -> list[Step]:
        return [*self.before_download, *self.after_download]

    def source_steps(self, source: str, phase: Literal["before_download", "after_download"]) -> list[Step]:
        """The phase's enabled steps with `source`'s overrides applied, in recipe order."""
        overrides = self.sources[source].filters
        merged = [s.merged(overrides[s.name]) if s.name in overrides else s for s in getattr(self, phase)]
        return [s for s in merged if s.enabled]

    def top_fraction_steps(self) -> list[tuple[str, Step]]:
        """(source, step) pairs whose threshold is a top fraction, computed in the planning pass."""
        return [(source, step) for source in self.sources for phase in ("before_download", "after_download")
                for step in self.source_steps(source, phase) if step.top_fraction is not None]


def make_filter(step: Step, thresholds: Mapping[str, float] | None = None) -> Filter:
    """The operator of a step; `thresholds` replaces a top-fraction step's thresholds once computed."""
    params = step.params
    if thresholds is not None:
        params["thresholds"] = dict(thresholds)
    try:
        return OPS[step.op](**params, name=step.name)
    except (ValueError, FileNotFoundError) as exc:
        raise RecipeError(f"step {step.name} ({step.op}): {exc}") from None


def load_recipe(path: str | Path, overrides: Mapping[str, Any] | None = None) -> CleanRecipe:
    """Parse (yaml.safe_load) and validate; `overrides` are dotted keys from the CLI (`download.allow_loopback`).

    Every source's filter chain is built here, so constructor checks (a CLIP checkpoint that is not there)
    fail now rather than in a worker.
    """
    recipe = load_model(path, CleanRecipe, overrides, RecipeError)
    for source in recipe.sources:
        for phase in ("before_download", "after_download"):
            for step in recipe.source_steps(source, phase):
                placeholder = {source: 0.0} if step.top_fraction is not None else None
                try:
                    make_filter(step, placeholder)
                except RecipeError as exc:
                    raise RecipeError(f"{path}: sources.{source}: {exc}") from None
    return recipe
