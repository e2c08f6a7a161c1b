"""Public annotation formats -> Items: one module per dataset family, registered here by adapter name.

An adapter module has `Options` (an `AdapterOptions` whose `adapter: Literal["name"]` is the recipe's name for
it), `TASKS` and `scan`. Adding one is its module plus its entry in `MODULES`; `ADAPTERS` and the recipe's
options union are built from that list.
"""

import functools
import operator
from importlib import import_module
from types import ModuleType
from typing import get_args

from vlforge.sources.annotations.base import ImageRef, Item, ShardMember, SourceError

MODULES = ("coco_captions", "vqav2", "gqa", "simple_vqa", "ai2d", "jsonl", "refcoco", "visual_genome", "grit",
           "shards", "text")


def _adapter_name(module: ModuleType) -> str:
    """The `adapter:` value a recipe names the module by: its Options' Literal."""
    return get_args(module.Options.model_fields["adapter"].annotation)[0]


ADAPTERS: dict[str, ModuleType] = {
    _adapter_name(m): m for m in (import_module(f"{__name__}.{name}") for name in MODULES)}
# Every adapter's Options, for a pydantic union discriminated by `adapter`.
AdapterOptionsUnion = functools.reduce(operator.or_, (m.Options for m in ADAPTERS.values()))

__all__ = ["ADAPTERS", "AdapterOptionsUnion", "ImageRef", "Item", "ShardMember", "SourceError"]
