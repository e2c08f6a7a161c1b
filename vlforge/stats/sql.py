"""`vlforge sql DIR... "SELECT ..."`: any query over the views `samples` and `metrics`; no query opens DuckDB."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Sequence

from vlforge.stats.manifests import Output, connect, metrics_view, run, samples_view
from vlforge.stats.tables import Table


def query(outputs: Sequence[Output], sql: str, max_rows: int) -> tuple[Table, bool]:
    """The first `max_rows` rows of the result, and whether there were more (never fetched)."""
    cursor = run(connect(outputs), sql)
    if cursor.description is None:  # a statement without a result (SET, CREATE, ...)
        return Table("result", "", [], []), False
    rows = cursor.fetchmany(max_rows + 1)
    return Table("result", "", [d[0] for d in cursor.description], rows[:max_rows]), len(rows) > max_rows


def setup_sql(outputs: Sequence[Output]) -> str:
    """The statements that create the views, for DuckDB's own shell."""
    return "; ".join(v for v in (samples_view(outputs), metrics_view(outputs)) if v) + ";"


def shell(outputs: Sequence[Output]) -> int:
    """Run the `duckdb` CLI on the views when it is installed; otherwise print the command that would."""
    setup = setup_sql(outputs)
    cli = shutil.which("duckdb")
    if cli:
        return subprocess.run([cli, "-cmd", setup], check=False).returncode
    print("No `duckdb` command on PATH. Install DuckDB's shell (`pip install duckdb-cli`) and run:\n\n"
          f"  duckdb -cmd {shlex.quote(setup)}\n\n"
          f"or pass a query: vlforge sql {' '.join(shlex.quote(str(o.dir)) for o in outputs)} "
          '"SELECT ... FROM samples"')
    return 0
