"""The report's charts: aggregates from DuckDB drawn by matplotlib into PNG data URIs (no file, no network)."""

from __future__ import annotations

import base64
import io
import math
from collections import defaultdict

import duckdb
from matplotlib.figure import Figure

from vlforge.stats.manifests import run
from vlforge.stats.tables import METRICS

BINS = 30
MAX_POINTS = 1000  # training curves are averaged into at most this many step buckets
COLORS = {"kept": "#2b8a3e", "dropped": "#c92a2a"}
TOP_REASONS = 8


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return data_uri(buffer.getvalue(), "image/png")


def funnel_chart(funnel_rows: list[dict], reason_rows: list[dict]) -> str:
    """One horizontal bar per source: kept, then dropped split by its largest reasons."""
    sources = [r["source"] for r in funnel_rows]
    totals: dict[str, int] = defaultdict(int)
    for r in reason_rows:
        totals[r["reason"]] += r["dropped"]
    top = sorted(totals, key=lambda k: (-totals[k], k))[:TOP_REASONS]
    parts: dict[str, dict[str, int]] = {"kept": {r["source"]: r["kept"] for r in funnel_rows}}
    for r in reason_rows:
        name = r["reason"] if r["reason"] in top else "other reasons"
        parts.setdefault(name, defaultdict(int))[r["source"]] += r["dropped"]
    fig = Figure(figsize=(8, 0.6 + 0.45 * len(sources)))
    ax = fig.subplots()
    left = [0] * len(sources)
    for name, by_source in parts.items():
        widths = [by_source.get(s, 0) for s in sources]
        ax.barh(sources, widths, left=left, label=name, color=COLORS.get(name))
        left = [a + b for a, b in zip(left, widths, strict=True)]
    ax.set_xlabel("samples read")
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_title("funnel: kept and dropped by reason")
    return _png(fig)


def histogram(con: duckdb.DuckDBPyConnection, directory: str, metric: str) -> str | None:
    """Kept and dropped histograms of one metric over its 1st..99th percentile range; None without values."""
    expr = METRICS[metric][0]
    rows = run(con, f"""
        WITH v AS (SELECT status, {expr} AS x FROM samples WHERE dir = ?),
             r AS (SELECT quantile_cont(x, 0.01) AS lo, quantile_cont(x, 0.99) AS hi FROM v WHERE x IS NOT NULL)
        SELECT status, coalesce(least({BINS - 1}, greatest(0, floor((x - lo) / nullif(hi - lo, 0) * {BINS})))::INT, 0)
               AS b, count(*) AS n, any_value(lo), any_value(hi)
        FROM v, r WHERE x IS NOT NULL GROUP BY ALL ORDER BY status DESC, b""", [directory]).fetchall()
    if not rows:
        return None
    lo, hi = rows[0][3], rows[0][4]
    width = (hi - lo) / BINS or 1.0
    fig = Figure(figsize=(4.2, 2.8))
    ax = fig.subplots()
    for status in ("kept", "dropped"):
        counts = [(lo + b * width, n) for s, b, n, _, _ in rows if s == status]
        if counts:
            ax.bar([c[0] for c in counts], [c[1] for c in counts], width=width, align="edge", alpha=0.6,
                   label=status, color=COLORS[status])
    ax.set_title(metric.replace("_", " "))
    ax.set_ylabel("samples")
    ax.legend(fontsize=7)
    return _png(fig)


def task_mix_chart(task_rows: list[dict]) -> str:
    samples: dict[str, int] = defaultdict(int)
    for r in task_rows:
        samples[r["task"]] += r["samples"]
    names = sorted(samples, key=lambda t: -samples[t])
    fig = Figure(figsize=(6, 0.6 + 0.4 * len(names)))
    ax = fig.subplots()
    ax.barh(names, [samples[t] for t in names], color="#1971c2")
    ax.invert_yaxis()
    ax.set_xlabel("kept samples")
    ax.set_title("task mix")
    return _png(fig)


def training_chart(con: duckdb.DuckDBPyConnection, directory: str) -> str | None:
    """Training loss and evaluation loss per task against the step, the learning rate beside them."""
    last = run(con, "SELECT max(step) FROM metrics WHERE dir = ?", [directory]).fetchone()[0]
    if last is None:
        return None
    bucket = max(1, math.ceil(last / MAX_POINTS))
    curves = run(con, f"""
        SELECT (step // {bucket}) * {bucket} AS s, avg(loss), avg(lr) FROM metrics
        WHERE dir = ? AND split = 'train' AND step IS NOT NULL GROUP BY ALL ORDER BY s""", [directory]).fetchall()
    per_task = run(con, """
        SELECT t.key, step, TRY_CAST(t.value AS DOUBLE) FROM metrics, json_each(eval) AS t
        WHERE dir = ? AND split = 'eval' ORDER BY t.key, step""", [directory]).fetchall()
    fig = Figure(figsize=(10, 3.2))
    ax_loss, ax_lr = fig.subplots(1, 2)
    train = [(s, loss) for s, loss, _ in curves if loss is not None]
    if train:
        ax_loss.plot(*zip(*train, strict=True), label="train loss")
    tasks: dict[str, list] = defaultdict(list)
    for task, step, loss in per_task:
        tasks[task].append((step, loss))
    for task, points in tasks.items():
        ax_loss.plot(*zip(*points, strict=True), marker="o", label=f"eval {task}")
    ax_loss.set_xlabel("step")
    ax_loss.set_title("loss")
    ax_loss.legend(fontsize=7)
    lr = [(s, v) for s, _, v in curves if v is not None]
    if lr:
        ax_lr.plot(*zip(*lr, strict=True), color="#e8590c")
    ax_lr.set_xlabel("step")
    ax_lr.set_title("learning rate")
    return _png(fig)
