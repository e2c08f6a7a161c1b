"""One recipe convention for every command: defaults -> YAML (safe_load) -> dotted CLI overrides -> pydantic model.

Every error names the file and the field path (`download.timeout: Input should be a valid number`), in one
format for clean, synthdog, render, mix and the trainer. Depends on yaml and pydantic only, so any layer
of vlforge may use it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)


class ConfigError(ValueError):
    """A recipe or override that cannot be used; the message names the file and the field."""


def field_errors(exc: ValidationError, prefix: str = "") -> str:
    """pydantic's errors as `field.path: message`, one after another; `prefix` names where the model sits in a
    larger recipe (`synthdog` -> `synthdog.canvas.size: ...`)."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts)


def read_yaml(path: str | Path, error: type[ValueError] = ConfigError, flag: str = "--recipe") -> dict[str, Any]:
    """The mapping a YAML recipe holds (yaml.safe_load; {} when empty); a missing file (named by its `flag`), bad
    YAML or a non-mapping raise `error`."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{flag}: no such file {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot be read ({exc})") from None
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({exc})") from None
    if data is None:  # an empty file: every key at its default
        return {}
    if not isinstance(data, dict):
        raise error(f"{path}: a recipe is a mapping of keys, got {type(data).__name__}")
    return data


def apply_overrides(data: dict[str, Any], overrides: Mapping[str, Any] | None,
                    error: type[ValueError] = ConfigError) -> dict[str, Any]:
    """`data` with dotted keys from the CLI set in it (`download.allow_loopback` -> data['download'][...]);
    a missing or null section becomes a mapping, any other value on the way (a list, a number) raises `error`."""
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for depth, key in enumerate(parents):
            if node.get(key) is None:
                node[key] = {}
            elif not isinstance(node[key], dict):
                where = ".".join(parents[:depth + 1])
                raise error(f"override {dotted}: {where} is a {type(node[key]).__name__}, not a mapping")
            node = node[key]
        node[leaf] = value
    return data


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else in `extra` replaces."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_model(path: str | Path | None, model: type[Model], overrides: Mapping[str, Any] | None = None,
               error: type[ValueError] = ConfigError, base: Mapping[str, Any] | None = None,
               flag: str = "--recipe") -> Model:
    """`base` (defaults such as a stage preset) <- read_yaml <- apply_overrides -> `model`; a validation error
    raises `error` naming the file and fields.

    Without a file (`path` None) the base and overrides alone are validated, and errors name only the fields.
    """
    data = _merge(copy.deepcopy(dict(base or {})), {} if path is None else read_yaml(path, error, flag))
    data = apply_overrides(data, overrides, error)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise error(f"{path}: {field_errors(exc)}" if path is not None else field_errors(exc)) from None
