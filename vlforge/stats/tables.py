"""The tables of `vlforge stats`: one DuckDB aggregate each over the views of `manifests.connect`.

Every table has `dir` as its first column, so the same table from several directories is one table. A table
whose columns no directory has (OCR lines for a cleaning run) is left out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from vlforge.evaluation.metrics import BOX_METRICS
from vlforge.stats.manifests import EVAL, Output, connect, literal, run, view_columns

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
QUANTILE_NAMES = ("p5", "p25", "p50", "p75", "p95")
EXACT_QUANTILE_ROWS = 100_000_000  # above this, DuckDB's approximate (t-digest) quantiles bound the memory
TOKEN_COLUMN = "est_tokens"  # per-sample estimate the mixer writes (text characters + 258 per image)


def _num(column: str) -> str:
    """A column as DOUBLE; a manifest whose values Arrow stored as JSON text gives NULL, not an error."""
    return f"TRY_CAST({column} AS DOUBLE)"


# Both sides known and positive (DuckDB's least/greatest skip NULLs, so that is checked first).
_SIZED = f"{_num('width')} > 0 AND {_num('height')} > 0"
# metric -> (SQL value per row, columns it needs)
METRICS: dict[str, tuple[str, set[str]]] = {
    "aspect_ratio": (f"CASE WHEN {_SIZED} THEN greatest({_num('width')}, {_num('height')}) / "
                     f"least({_num('width')}, {_num('height')}) END", {"width", "height"}),
    "shorter_side": (f"CASE WHEN {_SIZED} THEN least({_num('width')}, {_num('height')}) END", {"width", "height"}),
    "clip_score": (_num("clip_score"), {"clip_score"}),
    "caption_chars": (_num("caption_chars"), {"caption_chars"}),
    "lines_per_image": (_num("lines"), {"lines"}),
    "chars_per_line": (f"{_num('chars')} / nullif({_num('lines')}, 0)", {"chars", "lines"}),
    TOKEN_COLUMN: (_num(TOKEN_COLUMN), {TOKEN_COLUMN}),
}


@dataclass
class Table:
    name: str
    title: str
    columns: list[str]
    rows: list[tuple]

    def records(self) -> list[dict]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _table(con: duckdb.DuckDBPyConnection, name: str, title: str, sql: str) -> Table:
    cursor = run(con, sql)
    return Table(name, title, [d[0] for d in cursor.description], cursor.fetchall())


def funnel(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table:
    """Qwen-VL's cleaning table (source, raw, cleaned, retention, language), per directory and source."""
    table = _table(con, "funnel", "Funnel per source (read -> kept)", """
        SELECT dir, pipeline, coalesce(source, '?') AS source, count(*) AS read,
               count(*) FILTER (WHERE status = 'kept') AS kept, count(*) FILTER (WHERE status <> 'kept') AS dropped,
               round(100.0 * count(*) FILTER (WHERE status = 'kept') / count(*), 2) AS retention_pct
        FROM samples GROUP BY ALL ORDER BY dir, source""")
    if "lang" not in columns:
        return table
    shares = defaultdict(list)
    for d, source, lang, pct in run(con, """
            SELECT dir, source, lang, round(100.0 * n / sum(n) OVER (PARTITION BY dir, source), 1) AS pct
            FROM (SELECT dir, coalesce(source, '?') AS source, lang, count(*) AS n FROM samples
                  WHERE status = 'kept' AND lang IS NOT NULL GROUP BY ALL) ORDER BY pct DESC, lang""").fetchall():
        shares[d, source].append(f"{lang} {pct:g}%")
    table.columns.append("languages")
    table.rows = [(*row, " ".join(shares[row[0], row[2]][:4])) for row in table.rows]
    return table


def reasons(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table:
    """Drops by stage and reason; a reason's free-text detail after ': ' is folded into the reason."""
    return _table(con, "reasons", "Dropped by reason", """
        WITH r AS (SELECT dir, coalesce(source, '?') AS source, count(*) AS read FROM samples GROUP BY ALL),
        d AS (SELECT dir, coalesce(source, '?') AS source, coalesce(stage, '?') AS stage,
                     coalesce(split_part(reason, ': ', 1), '?') AS reason, count(*) AS dropped
              FROM samples WHERE status <> 'kept' GROUP BY ALL)
        SELECT dir, source, stage, reason, dropped, round(100.0 * dropped / read, 2) AS pct_of_read
        FROM d JOIN r USING (dir, source) ORDER BY dir, source, dropped DESC, stage, reason""")


def languages(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table | None:
    """Language split of what was kept (Qwen-VL: 77.3% English, 22.7% Chinese)."""
    if "lang" not in columns:
        return None
    return _table(con, "languages", "Languages of kept samples", """
        SELECT dir, lang, kept, round(100.0 * kept / sum(kept) OVER (PARTITION BY dir), 2) AS share_pct
        FROM (SELECT dir, coalesce(lang, '?') AS lang, count(*) AS kept FROM samples
              WHERE status = 'kept' AND dir IN (SELECT DISTINCT dir FROM samples WHERE lang IS NOT NULL)
              GROUP BY ALL)
        ORDER BY dir, kept DESC, lang""")


def distributions(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table | None:
    """Quantiles of each measured value per source, kept and dropped apart: one scan, one group-by for all."""
    present = {name: expr for name, (expr, needed) in METRICS.items() if needed <= columns.keys()}
    if not present:
        return None
    rows = run(con, "SELECT count(*) FROM samples").fetchone()[0]
    quantile = "quantile_cont" if rows <= EXACT_QUANTILE_ROWS else "approx_quantile"
    values = ", ".join(f"{expr} AS {name}" for name, expr in present.items())
    aggregates = ", ".join(f"count({n}), {quantile}({n}, {list(QUANTILES)}), avg({n})" for n in present)
    groups = run(con, f"""
        SELECT dir, source, status, {aggregates}
        FROM (SELECT dir, coalesce(source, '?') AS source, status, {values} FROM samples)
        GROUP BY ALL ORDER BY dir, source, status DESC""").fetchall()
    found = []
    for d, source, status, *measured in groups:
        for i, metric in enumerate(present):
            n, q, mean = measured[3 * i: 3 * i + 3]
            if n:
                found.append((d, source, status, metric, n, *(round(v, 4) for v in q), round(mean, 4)))
    found.sort(key=lambda r: (r[0], r[1], r[2] != "kept", r[3]))
    return Table("distributions", "Distributions (quantiles) per source, kept vs dropped",
                 ["dir", "source", "status", "metric", "n", *QUANTILE_NAMES, "mean"], found)


def tasks(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table | None:
    """Kept samples (and estimated tokens, where the manifests carry them) per task and source."""
    if "task" not in columns:
        return None
    tokens = f"sum({_num(TOKEN_COLUMN)})::BIGINT" if TOKEN_COLUMN in columns else "NULL::BIGINT"
    return _table(con, "tasks", "Task mix (kept samples per task and source)", f"""
        SELECT dir, task, source, samples, round(100.0 * samples / sum(samples) OVER (PARTITION BY dir), 2)
               AS share_pct, est_tokens
        FROM (SELECT dir, task, coalesce(source, '?') AS source, count(*) AS samples, {tokens} AS est_tokens
              FROM samples WHERE status = 'kept' AND task IS NOT NULL GROUP BY ALL)
        ORDER BY dir, samples DESC, task, source""")


def ocr(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table | None:
    """OCR sets: lines per image, characters per line, languages."""
    if not {"lines", "chars"} <= columns.keys():
        return None
    return _table(con, "ocr", "OCR samples per source", f"""
        SELECT dir, coalesce(source, '?') AS source, string_agg(DISTINCT lang, ' ' ORDER BY lang) AS langs,
               count(*) AS images, sum({_num('lines')})::BIGINT AS lines, sum({_num('chars')})::BIGINT AS chars,
               round(avg({_num('lines')}), 2) AS lines_per_image,
               round(sum({_num('chars')}) / nullif(sum({_num('lines')}), 0), 2) AS chars_per_line
        FROM samples WHERE status = 'kept' AND lines IS NOT NULL GROUP BY ALL ORDER BY dir, source""")


def _is_list(duck_type: str | None) -> bool:
    return bool(duck_type) and duck_type.endswith("[]")


def fonts(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table | None:
    """How many kept OCR images use each font (an image with lines in two fonts counts for both)."""
    if not _is_list(columns.get("fonts")):
        return None
    return _table(con, "fonts", "Fonts in kept OCR samples", """
        SELECT dir, coalesce(source, '?') AS source, font, count(*) AS images
        FROM (SELECT dir, source, unnest(fonts) AS font FROM samples WHERE status = 'kept')
        GROUP BY ALL ORDER BY dir, source, images DESC, font""")


def training(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table:
    """A training run in one row: steps, last loss and LR, throughput and the share of padding."""
    return _table(con, "training", "Training runs", """
        SELECT dir, count(*) FILTER (WHERE split = 'train') AS steps, max(step) AS last_step,
               round(arg_max(loss, step) FILTER (WHERE split = 'train'), 4) AS last_loss,
               arg_max(lr, step) FILTER (WHERE split = 'train') AS last_lr,
               round(avg(tokens_per_s), 1) AS tokens_per_s, round(avg(samples_per_s), 2) AS samples_per_s,
               round(100.0 * avg(padding), 2) AS padding_pct, count(*) FILTER (WHERE split = 'eval') AS evals
        FROM metrics GROUP BY dir ORDER BY dir""")


def task_loss(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table:
    """Evaluation loss per task: at the first and the last evaluation."""
    return _table(con, "task_loss", "Evaluation loss per task", """
        SELECT dir, t.key AS task, count(*) AS evals, min(step) AS first_step,
               round(arg_min(TRY_CAST(t.value AS DOUBLE), step), 4) AS first_loss, max(step) AS last_step,
               round(arg_max(TRY_CAST(t.value AS DOUBLE), step), 4) AS last_loss
        FROM metrics, json_each(eval) AS t WHERE split = 'eval' GROUP BY ALL ORDER BY dir, task""")


def evaluation(con: duckdb.DuckDBPyConnection, columns: dict[str, str]) -> Table:
    """Score (0-100, the mean of the per-sample scores, as `vlforge eval/score` reports it) and samples per
    benchmark; for grounding, how many outputs held no readable box."""
    boxes = ", ".join(map(literal, BOX_METRICS))
    unparseable = (f", count(*) FILTER (WHERE metric IN ({boxes}) AND pred_box IS NULL) AS unparseable"
                   if "pred_box" in columns else "")
    return _table(con, "evaluation", "Evaluation: score (0-100) per benchmark", f"""
        SELECT dir, benchmark, metric, avg(score) AS score, count(*) AS count{unparseable}
        FROM samples WHERE pipeline = '{EVAL}' GROUP BY ALL ORDER BY dir, benchmark""")


SAMPLE_TABLES: tuple[Callable, ...] = (funnel, reasons, languages, distributions, tasks, ocr, fonts)
METRICS_TABLES: tuple[Callable, ...] = (training, task_loss)


def compute_tables(con: duckdb.DuckDBPyConnection) -> list[Table]:
    """Every table the views can answer, empty ones left out."""
    found = []
    for view, builders in (("samples", SAMPLE_TABLES), ("metrics", METRICS_TABLES)):
        columns = view_columns(con, view)
        if not columns:
            continue
        found.extend(t for build in builders if (t := build(con, columns)) is not None and t.rows)
    return found


def split_outputs(outputs: Sequence[Output]) -> tuple[list[Output], list[Output]]:
    """(pipeline and training outputs, evaluations): evaluation rows share no columns with manifests, so each
    kind gets its own connection (a funnel must not count scored samples as read ones)."""
    return [o for o in outputs if o.pipeline != EVAL], [o for o in outputs if o.pipeline == EVAL]


def connections(outputs: Sequence[Output]) -> tuple[duckdb.DuckDBPyConnection | None,
                                                      duckdb.DuckDBPyConnection | None]:
    """(the pipeline and training connection, the evaluation one); None where there is no such output."""
    runs, evals = split_outputs(outputs)
    return (connect(runs) if runs else None), (connect(evals) if evals else None)


def output_tables(con: duckdb.DuckDBPyConnection | None, eval_con: duckdb.DuckDBPyConnection | None) -> list[Table]:
    """Every table over `connections(...)`: the pipeline and training tables, then the evaluation table."""
    found = compute_tables(con) if con is not None else []
    if eval_con is not None:
        table = evaluation(eval_con, view_columns(eval_con, "samples"))
        found.extend([table] if table.rows else [])
    return found
