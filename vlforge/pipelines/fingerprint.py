"""The plan fingerprint of a run: what decides its result, as readable fields.

A rerun on the same output directory resumes only when every field matches; otherwise
`shards.outdir.claim_out_dir` refuses it and lists the fields that changed, e.g.
`--lines-per-unit: 50 -> 100` or `input /data/x.jsonl: 1200 bytes, mtime_ns ... -> 1300 bytes, ...`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import vlforge

_STAMP_KEYS = ("mtime", "LastModified", "last_modified", "updated", "ETag", "etag", "md5Hash")


def describe_input(path: str | Path) -> str:
    """Size and modification stamp of a local file or an fsspec URL (whatever stamp the store gives)."""
    text = str(path)
    if "://" not in text:
        st = os.stat(text)
        return f"{st.st_size} bytes, mtime_ns {st.st_mtime_ns}"
    import fsspec

    fs, inner = fsspec.core.url_to_fs(text)
    info = fs.info(inner)
    stamps = ", ".join(f"{k} {info[k]}" for k in _STAMP_KEYS if info.get(k) is not None)
    return f"{info.get('size')} bytes" + (f", {stamps}" if stamps else "")


def flatten(value: object, prefix: str) -> dict[str, str]:
    """Nested mappings as dotted fields; every other value as its JSON text."""
    if isinstance(value, Mapping):
        fields: dict[str, str] = {}
        for key, item in value.items():
            fields.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return fields
    return {prefix: json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)}


def plan_fingerprint(options: Mapping[str, object], inputs: Iterable[str | Path] = ()) -> dict[str, str]:
    """Fields for the options that change the output (named as their flags), each input file, the version."""
    fields = {"vlforge version": vlforge.__version__}
    for name, value in options.items():
        fields.update(flatten(value, name))
    for path in inputs:
        name = str(path) if "://" in str(path) else str(Path(path).resolve())
        fields[f"input {name}"] = describe_input(name)
    return fields
