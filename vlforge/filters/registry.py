"""Every filter op, found by importing each module of this package: a new filter is its own module, nothing else.

What the clean pipeline needs to know about the ops (which read the image, which columns are scores or stay
out of the manifest) is read off the registered classes here, never listed by hand.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

import vlforge.filters
from vlforge.filters.base import OPERATORS, Filter


@cache
def operators() -> dict[str, type[Filter]]:
    """op -> filter class, for every module of vlforge.filters (imported once)."""
    for module in pkgutil.iter_modules(vlforge.filters.__path__):
        importlib.import_module(f"vlforge.filters.{module.name}")
    return dict(sorted(OPERATORS.items()))


def needs_image() -> frozenset[str]:
    """Ops that read the downloaded image bytes (after_download only)."""
    return frozenset(op for op, cls in operators().items() if cls.needs_image)


def score_columns() -> tuple[str, ...]:
    """Columns filters measure that are scores (a clean sample's JSON `scores`)."""
    return tuple(col for cls in operators().values() for col in cls.score_columns)


def sample_columns() -> tuple[str, ...]:
    """Columns filters measure that a clean sample's JSON carries besides its scores."""
    return tuple(col for cls in operators().values() for col in cls.sample_columns)


def private_columns() -> frozenset[str]:
    """Columns filters add that stay out of manifests (free text or bytes that live in the tar)."""
    return frozenset(col for cls in operators().values() for col in cls.private_columns)
