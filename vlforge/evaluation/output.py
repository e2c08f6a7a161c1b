"""Where scores go: a table in the terminal, `scores.json`, and `samples.parquet` with one row per sample
(prediction, references, score) so that a DuckDB query can list the failures."""

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vlforge.evaluation.metrics import BOX_METRICS, Item, MetricResult
from vlforge.shards.atomic import commit, temp_path

SCORES_FILE = "scores.json"
SAMPLES_FILE = "samples.parquet"


@dataclass
class Scored:
    """One benchmark's result with the samples behind it; `columns` adds per-sample fields (eval: prompt, key)."""

    benchmark: str
    result: MetricResult
    items: Sequence[Item]
    columns: dict[str, list] = field(default_factory=dict)

    def summary(self) -> dict:
        r = self.result
        return {"benchmark": self.benchmark, "metric": r.metric, "score": r.score, "count": r.count, **r.extras}


def format_table(scored: Sequence[Scored]) -> str:
    """One line per benchmark, plus a count of unreadable boxes where grounding was scored."""
    rows = [("benchmark", "metric", "count", "score", "unparseable")]
    for s in scored:
        unparseable = str(s.result.extras["unparseable"]) if "unparseable" in s.result.extras else ""
        rows.append((s.benchmark, s.result.metric, str(s.result.count), f"{s.result.score:.2f}", unparseable))
    if not any(row[4] for row in rows[1:]):
        rows = [row[:4] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                               enumerate(zip(row, widths, strict=True))).rstrip() for row in rows)


def _rows(s: Scored) -> Iterator[dict]:
    for i, item in enumerate(s.items):
        row = {"benchmark": s.benchmark, "metric": s.result.metric, "id": item.id, "prediction": item.prediction,
               "references": item.references, "score": s.result.per_sample[i],
               "image_size": list(item.image_size) if item.image_size else None}
        row.update({name: values[i] for name, values in s.result.columns.items()})
        row.update({name: values[i] for name, values in s.columns.items()})
        yield row


def _table(scored: Sequence[Scored]) -> pa.Table:
    box = any(s.result.metric in BOX_METRICS for s in scored)
    fields = [("benchmark", pa.string()), ("metric", pa.string()), ("id", pa.string()), ("prediction", pa.string()),
              ("references", pa.list_(pa.list_(pa.float64())) if box else pa.list_(pa.string())),
              ("score", pa.float64())]
    if box:
        fields += [("image_size", pa.list_(pa.int64())), ("pred_box", pa.list_(pa.float64())), ("iou", pa.float64())]
    fields += [(name, pa.string()) for name in dict.fromkeys(k for s in scored for k in s.columns)]
    # from_pylist takes only the schema's fields: image_size and the box columns drop out for text metrics
    return pa.Table.from_pylist([row for s in scored for row in _rows(s)], schema=pa.schema(fields))


def check_out_dir(out: Path) -> None:
    """Refuse an --out that already holds results: they would be replaced by a different run's."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    for name in (SCORES_FILE, SAMPLES_FILE):
        if (out / name).exists():
            raise ValueError(f"--out {out} already holds {name} from an earlier run; choose another directory")


def write_results(out: Path, scored: Sequence[Scored], info: dict) -> None:
    """samples.parquet, then scores.json (written last: its presence means the run finished)."""
    check_out_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    samples, scores = out / SAMPLES_FILE, out / SCORES_FILE
    pq.write_table(_table(scored), temp_path(samples))
    commit(temp_path(samples), samples)
    temp_path(scores).write_text(json.dumps({**info, "results": [s.summary() for s in scored]}, indent=2) + "\n")
    commit(temp_path(scores), scores)
