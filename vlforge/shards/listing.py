"""`vlforge shards ls`: samples, bytes and tasks per shard, from the manifests."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from vlforge.shards.manifest import KEPT, read_manifests


@dataclass
class ShardInfo:
    name: str
    samples: int = 0
    bytes: int = 0
    tasks: Counter = field(default_factory=Counter)


def list_shards(out_dir: str | Path) -> list[ShardInfo]:
    out = Path(out_dir)
    manifest = read_manifests(out)
    label = "task" if "task" in manifest.column_names else "source"
    shards: dict[str, ShardInfo] = defaultdict(lambda: ShardInfo(""))
    for row in manifest.select(["status", "tar", label]).to_pylist():
        if row["status"] != KEPT:
            continue
        info = shards[row["tar"]]
        info.name = row["tar"]
        info.samples += 1
        info.tasks[row[label] or "?"] += 1
    for info in shards.values():
        path = out / info.name
        info.bytes = path.stat().st_size if path.exists() else 0
    return [shards[name] for name in sorted(shards)]


def format_listing(infos: list[ShardInfo]) -> str:
    lines = [f"{'shard':<52} {'samples':>8} {'bytes':>12}  tasks"]
    for info in infos:
        tasks = ", ".join(f"{t}={n}" for t, n in sorted(info.tasks.items()))
        lines.append(f"{info.name:<52} {info.samples:>8} {info.bytes:>12}  {tasks}")
    total = Counter()
    for info in infos:
        total.update(info.tasks)
    lines.append(f"{'total (' + str(len(infos)) + ' shards)':<52} {sum(i.samples for i in infos):>8} "
                 f"{sum(i.bytes for i in infos):>12}  " + ", ".join(f"{t}={n}" for t, n in sorted(total.items())))
    return "\n".join(lines)
