"""Tables as terminal text, JSON or CSV: the same rows in each, so scripts read what people see."""

from __future__ import annotations

import csv
import io
import json

from vlforge.stats.tables import Table


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.1f}"
    return str(value)


def as_text(table: Table, show_dir: bool = True) -> str:
    """A titled, aligned table; numbers right-aligned. `show_dir=False` drops the `dir` column (one directory)."""
    keep = [i for i, c in enumerate(table.columns) if show_dir or c != "dir"]
    header = [table.columns[i] for i in keep]
    cells = [[cell(row[i]) for i in keep] for row in table.rows]
    numeric = [all(isinstance(row[i], (int, float)) or row[i] is None for row in table.rows) for i in keep]
    widths = [max([len(h), *(len(r[j]) for r in cells)]) for j, h in enumerate(header)]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    return "\n".join([table.title, line(header), line(["-" * w for w in widths]), *map(line, cells)])


def as_json(tables: list[Table]) -> str:
    return json.dumps({t.name: t.records() for t in tables}, ensure_ascii=False, indent=1)


def as_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    return buffer.getvalue()
