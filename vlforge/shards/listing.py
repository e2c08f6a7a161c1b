"""Listing shards: the tars that patterns name (`shard_urls`, for the trainer, `vlforge tokenize` and evaluation),
and `vlforge shards ls` (samples, bytes and tasks per shard, from the manifests)."""

import glob
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
from braceexpand import braceexpand

from vlforge.shards.manifest import KEPT, read_manifests
from vlforge.shards.reader import expand_shards


def shard_urls(patterns: str | Sequence[str]) -> list[str]:
    """The tars of each pattern, in order: a directory, a glob ('DIR/*.tar', local or fsspec), a brace pattern,
    a path or URL. FileNotFoundError names a pattern that names no tar: a typo never just shrinks the data."""
    urls: list[str] = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        found: list[str] = []
        for item in braceexpand(pattern):
            if glob.has_magic(item):
                fs, path = fsspec.core.url_to_fs(item)
                tars = sorted(p for p in fs.glob(path) if p.endswith(".tar"))
                found += [fs.unstrip_protocol(p) if "://" in item else p for p in tars]
            else:
                found += expand_shards(item)
        if not found:
            raise FileNotFoundError(f"no shards (*.tar) match {pattern!r}")
        urls += found
    return urls


@dataclass
class ShardInfo:
    name: str
    samples: int = 0
    bytes: int = 0
    tasks: Counter = field(default_factory=Counter)


def list_shards(out_dir: str | Path) -> list[ShardInfo]:
    """One entry per tar that committed manifests list, with its kept samples counted by task (or source)."""
    out = Path(out_dir)
    manifest = read_manifests(out)
    label = "task" if "task" in manifest.column_names else "source"
    shards: dict[str, ShardInfo] = {}
    for row in manifest.select(["status", "tar", label]).to_pylist():
        if row["status"] != KEPT:
            continue
        info = shards.setdefault(row["tar"], ShardInfo(row["tar"]))
        info.samples += 1
        info.tasks[row[label] or "?"] += 1
    for info in shards.values():
        path = out / info.name
        info.bytes = path.stat().st_size if path.exists() else 0
    return [shards[name] for name in sorted(shards)]


def _row(info: ShardInfo) -> str:
    tasks = ", ".join(f"{t}={n}" for t, n in sorted(info.tasks.items()))
    return f"{info.name:<52} {info.samples:>8} {info.bytes:>12}  {tasks}"


def format_listing(infos: list[ShardInfo]) -> str:
    """A table: one row per shard, then the totals."""
    total = ShardInfo(f"total ({len(infos)} shards)", sum(i.samples for i in infos),
                      sum(i.bytes for i in infos), sum((i.tasks for i in infos), Counter()))
    return "\n".join([f"{'shard':<52} {'samples':>8} {'bytes':>12}  tasks", *map(_row, infos), _row(total)])
