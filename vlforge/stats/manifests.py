"""What the directories given to `stats`/`sql`/`report` hold, checked up front, and the DuckDB views over them.

Each directory is one run: a pipeline's output (its `__manifests/*.manifest.parquet`), a training run (its
`metrics.jsonl`) or an evaluation (`vlforge eval/score --out`: `scores.json` and `samples.parquet`). Manifests,
and an evaluation's per-sample rows, become rows of the view `samples` with two columns added, `dir` and
`pipeline` (clean, synthdog, render, mix, eval, or `manifest` for a layout we do not recognise); training metrics
become rows of the view `metrics`. DuckDB reads the files in place, so nothing but aggregates ever reaches Python. Every
problem found here or in a query is a `StatsError` naming the file, which the CLI prints in one line.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from vlforge.evaluation.output import SAMPLES_FILE, SCORES_FILE
from vlforge.shards.manifest import CORE_COLUMNS, MANIFEST_DIR, MANIFEST_SUFFIX, list_manifests

METRICS_FILE = "metrics.jsonl"
MIX_FILE = "mix.json"  # the mixer's realised mixture: its directory is a mix whatever the columns say
TRAIN = "train"
EVAL = "eval"
# Columns only one pipeline writes, checked in this order.
SIGNATURES = (("synthdog", {"lines", "chars", "background"}), ("render", {"task", "line"}),
              ("clean", {"url", "row"}))
# Training metrics (vlforge/training/loop.py `Metrics`): a row per step, `{"step", "loss", "lr", "grad_norm",
# "tokens_per_s", "samples_per_s", "padding" (share of padding tokens), "seconds", "mfu"?}`, and a row per
# evaluation, `{"step", "eval": {task: loss}}`. Fields read, with their types; others are ignored.
METRICS_COLUMNS = {"step": "BIGINT", "loss": "DOUBLE", "lr": "DOUBLE", "grad_norm": "DOUBLE", "tokens_per_s": "DOUBLE",
                   "samples_per_s": "DOUBLE", "padding": "DOUBLE", "seconds": "DOUBLE", "mfu": "DOUBLE",
                   "eval": "JSON"}


class StatsError(ValueError):
    """A directory, file or query that cannot be answered, said in one line."""


class DataError(StatsError):
    """DuckDB failed while reading the files, not on the query's text."""


@dataclass(frozen=True)
class Output:
    dir: Path
    pipeline: str  # clean | synthdog | render | mix | manifest | train | eval


def pipeline_of(columns: set[str]) -> str:
    return next((name for name, needed in SIGNATURES if needed <= columns), "manifest")


def _columns(path: Path) -> set[str]:
    """A manifest's column names, from its footer; a file that is not a vlforge manifest is refused by name."""
    try:
        names = set(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        raise StatsError(f"{path}: not a readable parquet file ({exc}); move it out of {path.parent}") from None
    missing = [c for c in CORE_COLUMNS if c not in names]
    if missing:
        raise StatsError(f"{path}: not a vlforge manifest (no column {', '.join(missing)})")
    return names


def find_output(directory: Path) -> Output:
    """The one run a directory holds; several pipelines' manifests in one directory are refused."""
    if not directory.is_dir():
        raise StatsError(f"{directory}: no such directory")
    if (directory / SCORES_FILE).is_file() and (directory / SAMPLES_FILE).is_file():
        return Output(directory, EVAL)
    if (directory / SAMPLES_FILE).is_file() and not (directory / METRICS_FILE).is_file():
        raise StatsError(f"{directory}: {SAMPLES_FILE} without {SCORES_FILE}: an evaluation that did not finish "
                         "(scores.json is written last); run it again into an empty --out")
    if (directory / METRICS_FILE).is_file():
        return Output(directory, TRAIN)
    files = list_manifests(directory)
    if not files:
        raise StatsError(f"{directory}: no manifests ({MANIFEST_DIR}/*{MANIFEST_SUFFIX}), no {METRICS_FILE} and "
                         f"no {SCORES_FILE} with {SAMPLES_FILE}; "
                         "is it the --out directory of a vlforge command?")
    found: dict[str, list[str]] = {}
    for path in files:
        found.setdefault(pipeline_of(_columns(path)), []).append(path.name)
    if (directory / MIX_FILE).is_file():
        return Output(directory, "mix")
    if len(found) > 1:
        listing = "; ".join(f"{name}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                            for name, names in sorted(found.items()))
        raise StatsError(f"{directory}: manifests of different pipelines in one directory ({listing}); "
                         "each vlforge run writes its own --out directory, so pass them as separate directories")
    return Output(directory, next(iter(found)))


def find_outputs(dirs: Sequence[Path]) -> list[Output]:
    if not dirs:
        raise StatsError("no directory given")
    outputs, seen = [], set()
    for directory in dirs:
        resolved = Path(directory).resolve()
        if resolved in seen:
            raise StatsError(f"{directory}: given twice (its rows would count twice)")
        seen.add(resolved)
        outputs.append(find_output(Path(directory)))
    return outputs


def literal(text: str) -> str:
    """A SQL string literal (views cannot take parameters)."""
    return "'" + text.replace("'", "''") + "'"


def sample_files(output: Output) -> list[Path]:
    """The parquet files behind an output's rows in `samples`: its manifests, or an evaluation's samples file."""
    if output.pipeline == EVAL:
        return [output.dir / SAMPLES_FILE]
    return list_manifests(output.dir) if output.pipeline != TRAIN else []


def _pattern(output: Output) -> Path:
    return output.dir / SAMPLES_FILE if output.pipeline == EVAL else output.dir / MANIFEST_DIR / ("*" + MANIFEST_SUFFIX)


def samples_view(outputs: Sequence[Output]) -> str | None:
    """`CREATE VIEW samples` over every pipeline and evaluation output (None when there is none); also what `sql`
    hands the CLI."""
    parts = [f"SELECT *, {literal(str(o.dir))} AS dir, {literal(o.pipeline)} AS pipeline FROM read_parquet("
             f"{literal(str(_pattern(o)))}, union_by_name = true)"
             for o in outputs if o.pipeline != TRAIN]
    return "CREATE VIEW samples AS " + " UNION ALL BY NAME ".join(parts) if parts else None


def metrics_view(outputs: Sequence[Output]) -> str | None:
    columns = "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in METRICS_COLUMNS.items()) + "}"
    parts = [f"SELECT CASE WHEN eval IS NULL THEN 'train' ELSE 'eval' END AS split, *, {literal(str(o.dir))} AS dir "
             f"FROM read_json("
             f"{literal(str(o.dir / METRICS_FILE))}, format = 'newline_delimited', columns = {columns})"
             for o in outputs if o.pipeline == TRAIN]
    return "CREATE VIEW metrics AS " + " UNION ALL ".join(parts) if parts else None


def connect(outputs: Sequence[Output]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the views `samples` and/or `metrics` over the outputs' files."""
    con = duckdb.connect()
    for view in (samples_view(outputs), metrics_view(outputs)):
        if view:
            run(con, view)
    return con


def run(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None) -> duckdb.DuckDBPyConnection:
    """Execute; DuckDB's message becomes a one-line StatsError (control characters escaped)."""
    try:
        return con.execute(sql, params)
    except duckdb.Error as exc:
        text = " ".join(str(exc).split())
        text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
        query_error = isinstance(exc, (duckdb.ParserException, duckdb.BinderException, duckdb.CatalogException))
        raise (StatsError if query_error else DataError)(text) from None


@contextmanager
def naming_bad_files(outputs: Sequence[Output]) -> Iterator[None]:
    """When reading fails, name the manifest whose data pyarrow cannot read either (DuckDB's message does not)."""
    try:
        yield
    except DataError:
        for output in outputs:
            for path in sample_files(output):
                try:
                    pq.read_table(path)
                except (pa.ArrowException, OSError) as exc:
                    detail = " ".join(str(exc).split())
                    raise StatsError(f"{path}: unreadable parquet data ({detail}); move it out of {path.parent}") \
                        from None
        raise


def view_columns(con: duckdb.DuckDBPyConnection, view: str) -> dict[str, str]:
    """Column name -> DuckDB type of a view; empty when the view does not exist."""
    rows = run(con, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?",
               [view]).fetchall()
    return dict(rows)
