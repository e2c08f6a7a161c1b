"""Arguments and entry points of `vlforge stats`, `sql` and `report`; DuckDB and matplotlib load only when run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_stats_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stats", help="funnel, drop reasons, distributions, task mix, OCR, training and "
                                               "evaluation tables")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="output directories of vlforge runs")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="every table as JSON (name -> rows)")
    fmt.add_argument("--csv", metavar="TABLE", help="one table as CSV (funnel, reasons, languages, ...)")


def run_stats(args: argparse.Namespace) -> int:
    from vlforge.stats.manifests import StatsError, find_outputs, naming_bad_files
    from vlforge.stats.output import as_csv, as_json, as_text
    from vlforge.stats.tables import connections, output_tables

    outputs = find_outputs(args.dirs)
    with naming_bad_files(outputs):
        tables = output_tables(*connections(outputs))
    if not tables:
        raise StatsError(f"no rows: the manifests in {', '.join(map(str, args.dirs))} are empty")
    if args.json:
        print(as_json(tables))
    elif args.csv:
        named = {t.name: t for t in tables}
        if args.csv not in named:
            raise StatsError(f"--csv: no table {args.csv!r} for these directories; there are {', '.join(named)}")
        sys.stdout.write(as_csv(named[args.csv]))
    else:
        print("\n\n".join(as_text(t, show_dir=len(args.dirs) > 1) for t in tables))
    return 0


def add_sql_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sql", help="SQL over the manifests and evaluation samples (view `samples`) and training "
                            "metrics (view `metrics`)",
                       description='vlforge sql DIR... ["SELECT ... FROM samples"]: without a query, opens the '
                                   "duckdb shell on the views (or prints how to).")
    p.add_argument("args", nargs="+", metavar="DIR... [QUERY]",
                   help="directories, then optionally the query (the last argument, when it is no directory)")
    p.add_argument("--max-rows", type=int, default=1000, help="rows printed at most (default 1000)")


def _split_query(args: list[str]) -> tuple[list[Path], str | None]:
    """The last argument is the query when it is no directory and reads like SQL (has a space or a ';')."""
    last = args[-1]
    if len(args) > 1 and not Path(last).is_dir() and (any(c.isspace() for c in last) or last.endswith(";")):
        return [Path(a) for a in args[:-1]], last
    return [Path(a) for a in args], None


def run_sql(args: argparse.Namespace) -> int:
    from vlforge.stats.manifests import find_outputs, naming_bad_files
    from vlforge.stats.output import as_text
    from vlforge.stats.sql import query, shell

    dirs, sql = _split_query(args.args)
    outputs = find_outputs(dirs)
    if sql is None:
        return shell(outputs)
    if args.max_rows < 1:
        raise ValueError("--max-rows must be >= 1")
    with naming_bad_files(outputs):
        table, truncated = query(outputs, sql, args.max_rows)
    if table.columns:
        print(as_text(table).lstrip("\n"))
        print(f"({len(table.rows)} rows{'; more not shown: add LIMIT or raise --max-rows' if truncated else ''})")
    return 0


def add_report_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="one self-contained HTML report: charts and image grids, no network")
    p.add_argument("dirs", nargs="+", type=Path, metavar="DIR", help="output directories of vlforge runs")
    p.add_argument("--out", required=True, type=Path, help="the HTML file to write")
    p.add_argument("--images", type=int, default=12, help="kept images shown per directory (default 12)")


def run_report(args: argparse.Namespace) -> int:
    from vlforge.stats.manifests import find_outputs, naming_bad_files
    from vlforge.stats.report import write_report

    if args.images < 0:
        raise ValueError("--images must be >= 0")
    outputs = find_outputs(args.dirs)
    with naming_bad_files(outputs):
        write_report(outputs, args.out, args.images)
    print(f"wrote {args.out}")
    return 0
