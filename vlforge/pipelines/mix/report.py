"""What a mix realised, from its manifests (DuckDB reads them in place): counts, lengths, duplicates.

Written to `MIX_DIR/mix.json` and printed as a table at the end of the run.
"""

from __future__ import annotations

from pathlib import Path

from vlforge.shards.manifest import MANIFEST_DIR, MANIFEST_SUFFIX

QUANTILES = (0.5, 0.9, 0.99)


def _query(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def _duplicates(con, column: str) -> dict:
    """Images (by `column`: sha256 or phash) kept from more than one source, and the source pairs."""
    rows = _query(con, f"""
        WITH images AS (SELECT DISTINCT unnest(string_split({column}, ',')) AS h, source
                        FROM m WHERE status = 'kept' AND {column} IS NOT NULL),
             shared AS (SELECT h, list(source ORDER BY source) AS sources FROM images GROUP BY h
                        HAVING count(*) > 1)
        SELECT sources, count(*) FROM shared GROUP BY sources ORDER BY sources""")
    return {"images": sum(n for _, n in rows), "by_sources": {"+".join(s): n for s, n in rows}}


def _lengths(con) -> dict:
    """Per task: the estimated-length distribution of the kept samples."""
    lengths = {}
    qs = ", ".join(f"quantile_cont(est_tokens, {q})" for q in QUANTILES)
    for task, count, low, high, mean, total, *quantiles in _query(con, f"""
            SELECT task, count(*), min(est_tokens), max(est_tokens), avg(est_tokens), sum(est_tokens), {qs}
            FROM m WHERE status = 'kept' GROUP BY task ORDER BY task"""):
        lengths[task] = {"samples": count, "min": low, "max": high, "mean": round(mean, 1), "total": int(total),
                         **{f"p{round(q * 100)}": round(v, 1) for q, v in zip(QUANTILES, quantiles, strict=True)}}
    return lengths


def summarize(out: Path, planned: dict[str, int], tasks: dict[str, str]) -> dict:
    """The realised mix: per source and task, drop reasons, estimated-length distribution, duplicates."""
    import duckdb

    con = duckdb.connect()
    pattern = str(Path(out) / MANIFEST_DIR / f"*{MANIFEST_SUFFIX}")
    con.execute(f"CREATE VIEW m AS SELECT * FROM read_parquet('{pattern}', union_by_name = true)")
    columns = {row[0] for row in _query(con, "DESCRIBE m")}
    sources = {name: {"task": tasks[name], "planned": planned[name], "kept": 0, "dropped": 0, "reasons": {}}
               for name in planned}
    for source, status, reason, n in _query(con, "SELECT source, status, reason, count(*) FROM m GROUP BY ALL"):
        entry = sources[source]
        entry[status] += n
        if reason:
            entry["reasons"][reason] = n
    by_task: dict[str, int] = {}
    for entry in sources.values():
        by_task[entry["task"]] = by_task.get(entry["task"], 0) + entry["kept"]
    lengths = _lengths(con) if "est_tokens" in columns else {}  # a mix that kept nothing has no such column
    duplicates = {c: _duplicates(con, c) for c in ("sha256", "phash") if c in columns}
    return {"sources": sources, "tasks": by_task, "est_tokens": lengths, "duplicates": duplicates}


def format_summary(summary: dict) -> str:
    """The end-of-run table: one row per source, then per task with the length distribution."""
    kept = sum(e["kept"] for e in summary["sources"].values()) or 1
    lines = [f"{'source':<20} {'task':<17} {'planned':>8} {'kept':>8} {'share':>7}  dropped"]
    for name, e in summary["sources"].items():
        reasons = ", ".join(f"{r}={n}" for r, n in sorted(e["reasons"].items())) or "-"
        lines.append(f"{name:<20} {e['task']:<17} {e['planned']:>8} {e['kept']:>8} "
                     f"{100 * e['kept'] / kept:>6.1f}%  {reasons}")
    lines.append(f"\n{'task':<17} {'kept':>8} {'share':>7} {'est_tokens p50':>15} {'p90':>8} {'max':>8}")
    for task, n in sorted(summary["tasks"].items()):
        length = summary["est_tokens"].get(task, {})
        lines.append(f"{task:<17} {n:>8} {100 * n / kept:>6.1f}% {length.get('p50', '-'):>15} "
                     f"{length.get('p90', '-'):>8} {length.get('max', '-'):>8}")
    for kind, found in summary["duplicates"].items():
        pairs = ", ".join(f"{k}={n}" for k, n in found["by_sources"].items()) or "none"
        lines.append(f"images in several sources by {kind}: {found['images']} ({pairs})")
    return "\n".join(lines)
