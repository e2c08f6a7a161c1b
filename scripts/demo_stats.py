"""Print `vlforge stats` for every directory the demo built and write the HTML report beside them.

    python scripts/demo_stats.py OUT.html DIR [DIR ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vlforge.stats.manifests import connect, find_outputs, naming_bad_files
from vlforge.stats.output import as_text
from vlforge.stats.report import write_report
from vlforge.stats.tables import compute_tables


def stats_and_report(dirs: list[Path], out_html: Path) -> None:
    outputs = find_outputs(dirs)
    with naming_bad_files(outputs):
        tables = compute_tables(connect(outputs))
        print("\n\n".join(as_text(t, show_dir=len(dirs) > 1) for t in tables))
        write_report(outputs, out_html)
    print(f"\nreport: {out_html} (open it in a browser; it needs no network)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_html", type=Path)
    parser.add_argument("dirs", nargs="+", type=Path)
    args = parser.parse_args()
    stats_and_report(args.dirs, args.out_html)


if __name__ == "__main__":
    main()
