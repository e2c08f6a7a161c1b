"""The `vlforge` command: parse arguments, call a pipeline. Nothing imports this module."""

import argparse
import sys
from pathlib import Path

from vlforge.evaluation.eval_cli import add_eval_parser, run_eval
from vlforge.evaluation.score_cli import add_score_parser, run_score
from vlforge.pipelines.clean.run import add_clean_parser, run_clean
from vlforge.pipelines.executor import UnitFailure
from vlforge.pipelines.export import add_export_parser, run_export
from vlforge.pipelines.mix.run import add_mix_parser, run_mix
from vlforge.pipelines.render import add_render_parser, run_render_command
from vlforge.pipelines.synthdog import add_synthdog_parser, run_synthdog
from vlforge.stats.commands import add_report_parser, add_sql_parser, add_stats_parser, run_report, run_sql, run_stats
from vlforge.training.cli_commands import add_generate_parser, add_train_parser, run_generate, run_train
from vlforge.training.tokenize_cli import add_tokenize_parser, run_tokenize


def _add_shards(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("shards", help="inspect and check shard directories")
    shard_sub = p.add_subparsers(dest="shards_command", required=True)
    verify = shard_sub.add_parser("verify", help="every tar complete, members match manifest, json/images decode")
    verify.add_argument("dir", type=Path)
    ls = shard_sub.add_parser("ls", help="samples, bytes and tasks per shard")
    ls.add_argument("dir", type=Path)


def _run_shards(args: argparse.Namespace) -> int:
    if args.shards_command == "ls":
        from vlforge.shards.listing import format_listing, list_shards

        print(format_listing(list_shards(args.dir)))
        return 0
    from vlforge.shards.verify import verify_dir

    report = verify_dir(args.dir)
    for line in report.warnings:
        print(f"warning: {line}")
    for line in report.problems:
        print(f"problem: {line}")
    verdict = "OK" if report.ok else f"FAILED ({len(report.problems)} problems)"
    print(f"{args.dir}: {report.tars} tars, {report.samples} samples, {report.manifest_rows} manifest rows: {verdict}")
    return 0 if report.ok else 1


COMMANDS = {"render": (add_render_parser, run_render_command), "export": (add_export_parser, run_export),
            "shards": (_add_shards, _run_shards), "synthdog": (add_synthdog_parser, run_synthdog),
            "clean": (add_clean_parser, run_clean), "mix": (add_mix_parser, run_mix),
            "score": (add_score_parser, run_score), "eval": (add_eval_parser, run_eval),
            "tokenize": (add_tokenize_parser, run_tokenize),
            "stats": (add_stats_parser, run_stats), "sql": (add_sql_parser, run_sql),
            "report": (add_report_parser, run_report),
            "train": (add_train_parser, run_train), "generate": (add_generate_parser, run_generate)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vlforge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][1](args)
    except UnitFailure as exc:  # the rest committed: say what did run, then what did not
        print(exc.report.summary(exc.out), file=sys.stderr)
        print(f"vlforge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"vlforge {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
