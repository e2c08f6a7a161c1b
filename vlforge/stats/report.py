"""`vlforge report DIR... --out report.html`: one self-contained page, charts and image grids inline.

Everything is embedded as data URIs and a Content-Security-Policy forbids scripts and any fetch, so the file
opens offline and a caption from the web cannot run code in it (all text is escaped too). An existing file
at --out is replaced only when it is a vlforge report.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import duckdb

from vlforge.shards.atomic import commit, temp_path
from vlforge.stats import charts
from vlforge.stats.evalpage import Worst, attach_images, worst_samples
from vlforge.stats.grids import Tile, dropped_tiles, kept_tiles
from vlforge.stats.manifests import EVAL, TRAIN, Output, StatsError
from vlforge.stats.output import cell
from vlforge.stats.tables import METRICS, Table, connections, output_tables

GENERATOR = '<meta name="generator" content="vlforge report">'
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table.stats { border-collapse: collapse; font-size: 13px; margin: 0.5em 0 1em; }
table.stats th, table.stats td { border-bottom: 1px solid #ddd; padding: 2px 8px; text-align: right; }
table.stats th:first-child, table.stats td:first-child { text-align: left; }
img.chart { max-width: 100%; margin: 4px; border: 1px solid #eee; }
.grid { display: flex; flex-wrap: wrap; gap: 8px; }
.grid figure { width: 170px; margin: 0; font-size: 11px; }
.grid img { max-width: 160px; max-height: 160px; display: block; }
.none { color: #888; font-style: italic; }
.grid.worst figure { width: 340px; }
.grid.worst img { max-width: 320px; max-height: 320px; }
.grid.worst dl { margin: 2px 0; } .grid.worst dt { font-weight: bold; } .grid.worst dd { margin: 0 0 2px 8px; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def html_table(table: Table, directory: str) -> str:
    """The rows of one directory, without the `dir` column."""
    keep = [i for i, c in enumerate(table.columns) if c != "dir"]
    rows = [r for r in table.rows if r[0] == directory]
    if not rows:
        return ""
    head = "".join(f"<th>{_esc(table.columns[i])}</th>" for i in keep)
    body = "".join("<tr>" + "".join(f"<td>{_esc(cell(r[i]))}</td>" for i in keep) + "</tr>" for r in rows)
    return (f'<h3>{_esc(table.title)}</h3>\n<table class="stats" data-table="{table.name}"><tr>{head}</tr>'
            f"{body}</table>")


def _chart(uri: str | None, name: str) -> str:
    return f'<img class="chart" data-chart="{_esc(name)}" alt="{_esc(name)}" src="{uri}">' if uri else ""


def _grid(tiles: list[Tile], kind: str, reason: str | None = None) -> str:
    figures = "".join(
        "<figure>" + (f'<img src="{t.image}" alt="{_esc(t.uid)}">' if t.image else '<p class="none">no image</p>')
        + f"<figcaption>{_esc(t.caption)}</figcaption></figure>" for t in tiles)
    attr = f' data-reason="{_esc(reason)}"' if reason is not None else ""
    return f'<div class="grid {kind}"{attr}>{figures}</div>'


def _rows(tables: dict[str, Table], name: str, directory: str) -> list[dict]:
    table = tables.get(name)
    return [r for r in table.records() if r["dir"] == directory] if table else []


def data_section(con: duckdb.DuckDBPyConnection, output: Output, tables: dict[str, Table], images: int) -> str:
    d = str(output.dir)
    parts = [html_table(t, d) for t in tables.values() if t.name in ("funnel", "reasons", "languages")]
    funnel, reasons = _rows(tables, "funnel", d), _rows(tables, "reasons", d)
    if funnel:
        parts.append(_chart(charts.funnel_chart(funnel, reasons), "funnel"))
    metrics = {r["metric"] for r in _rows(tables, "distributions", d)}
    if metrics:
        parts.append("<h3>Distributions</h3>")
        parts.extend(_chart(charts.histogram(con, d, m), m) for m in METRICS if m in metrics)
    task_rows = _rows(tables, "tasks", d)
    if task_rows:
        parts.extend([html_table(tables["tasks"], d), _chart(charts.task_mix_chart(task_rows), "tasks")])
    parts.extend(html_table(t, d) for t in tables.values() if t.name in ("ocr", "fonts"))
    kept, unreadable = kept_tiles(con, output.dir, images)
    if kept or unreadable:
        parts.append("<h3>Kept samples</h3>")
        parts.extend(f'<p class="none">not shown: {_esc(note)}</p>' for note in unreadable)
        parts.append(_grid(kept, "kept") if kept else "")
    dropped = dropped_tiles(con, output.dir)
    if reasons:
        parts.append("<h3>Dropped samples by reason</h3>")
        for reason in dict.fromkeys(r["reason"] for r in reasons):
            tiles = dropped.get(reason)
            parts.append(f"<h4>{_esc(reason)}</h4>")
            parts.append(_grid(tiles, "dropped", reason) if tiles else
                         '<p class="none">no thumbnails (dropped before its image was fetched, the image did '
                         "not decode, or the run kept none)</p>")
    return "\n".join(p for p in parts if p)


def training_section(con: duckdb.DuckDBPyConnection, output: Output, tables: dict[str, Table]) -> str:
    d = str(output.dir)
    parts = [html_table(t, d) for t in tables.values() if t.name in ("training", "task_loss")]
    parts.append(_chart(charts.training_chart(con, d), "training"))
    return "\n".join(p for p in parts if p)


def _references(sample: Worst) -> str:
    if sample.image_size:  # grounding: pixel boxes
        return "; ".join("[" + ", ".join(f"{v:g}" for v in box) + "]" for box in sample.references)
    return " | ".join(map(str, sample.references))


def _worst_figure(sample: Worst) -> str:
    image = f'<img src="{sample.image}" alt="{_esc(sample.id)}">' if sample.image else '<p class="none">no image</p>'
    fields = [("id", sample.id), ("score", f"{sample.score:g}"), ("prompt", sample.prompt),
              ("prediction", sample.prediction), ("references", _references(sample))]
    if sample.image_size:
        fields.append(("boxes", "references green, prediction red" + ("" if sample.pred_box else " (none read)")))
    items = "".join(f"<dt>{name}</dt><dd>{_esc(value)}</dd>" for name, value in fields if value is not None)
    return f"<figure>{image}<figcaption><dl>{items}</dl></figcaption></figure>"


def eval_section(con: duckdb.DuckDBPyConnection, output: Output, tables: dict[str, Table]) -> str:
    """The metric table and each benchmark's worst-scoring samples."""
    parts = [html_table(tables["evaluation"], str(output.dir))] if "evaluation" in tables else []
    worst = worst_samples(con, output.dir)
    notes = attach_images(output.dir, worst)
    parts.append("<h3>Worst-scoring samples</h3>")
    parts.extend(f'<p class="none">{_esc(note)}</p>' for note in notes)
    for benchmark in dict.fromkeys(s.benchmark for s in worst):
        figures = "".join(_worst_figure(s) for s in worst if s.benchmark == benchmark)
        parts.append(f'<h4>{_esc(benchmark)}</h4>\n<div class="grid worst" data-reason="{_esc(benchmark)}">'
                     f"{figures}</div>")
    return "\n".join(p for p in parts if p)


def build_html(outputs: Sequence[Output], images: int) -> str:
    """One section per output; evaluations are read over their own connection (see `tables.split_outputs`)."""
    con, eval_con = connections(outputs)
    tables = {t.name: t for t in output_tables(con, eval_con)}
    sections = []
    for output in outputs:
        if output.pipeline == EVAL:
            body = eval_section(eval_con, output, tables)
        elif output.pipeline == TRAIN:
            body = training_section(con, output, tables)
        else:
            body = data_section(con, output, tables, images)
        sections.append(f'<section class="run" data-pipeline="{output.pipeline}">\n'
                        f"<h2>{_esc(output.dir)} <small>({output.pipeline})</small></h2>\n{body}\n</section>")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n{GENERATOR}\n'
            f"<title>vlforge report</title><style>{STYLE}</style></head>\n<body>\n<h1>vlforge report</h1>\n"
            + "\n".join(sections) + "\n</body></html>\n")


def _check_replaceable(out: Path) -> None:
    if out.is_dir():
        raise StatsError(f"--out {out}: is a directory; give the HTML file's path")
    if out.exists():
        with open(out, "rb") as f:
            head = f.read(4096)
        if GENERATOR.encode() not in head:
            raise StatsError(f"--out {out}: exists and is not a vlforge report; choose another path")


def write_report(outputs: Sequence[Output], out: Path, images: int = 12) -> None:
    _check_replaceable(out)
    page = build_html(outputs, images)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(out)
    tmp.write_text(page, encoding="utf-8")
    commit(tmp, out)
