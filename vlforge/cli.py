"""The `vlforge` command: parse arguments, call a pipeline. Nothing imports this module."""

import argparse
import sys
from pathlib import Path

from vlforge.evaluation.eval_cli import add_eval_parser, run_eval
from vlforge.evaluation.score_cli import add_score_parser, run_score
from vlforge.formats.tasks import TASKS
from vlforge.pipelines.clean.run import add_clean_parser, run_clean
from vlforge.pipelines.executor import UnitFailure
from vlforge.pipelines.mix.run import add_mix_parser, run_mix
from vlforge.pipelines.synthdog import add_synthdog_parser, run_synthdog
from vlforge.stats.commands import add_report_parser, add_sql_parser, add_stats_parser, run_report, run_sql, run_stats
from vlforge.training.cli_commands import add_generate_parser, add_train_parser, run_generate, run_train
from vlforge.training.tokenize_cli import add_tokenize_parser, run_tokenize

RENDER_KEYS = ("task", "input", "out", "source", "on_error", "shard_samples", "shard_bytes", "lines_per_unit",
               "max_images", "allow_outside_paths", "allow_foreign_files", "ray_address")  # flag = recipe key


def _add_render(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("render", help="render task JSONL records into WebDataset shards")
    p.add_argument("--recipe", help="YAML recipe whose keys are these flags' names (flags override its keys)")
    p.add_argument("--task", choices=TASKS, help="recipe key task (required)")
    p.add_argument("--input", nargs="+", type=Path, help="JSONL file(s); image paths relative to each "
                                                         "(recipe key input, required)")
    p.add_argument("--out", type=Path, help="output directory (recipe key out, required)")
    p.add_argument("--source", help="dataset name recorded with every sample (default: the input file's stem)")
    p.add_argument("--on-error", choices=("raise", "skip"),
                   help="raise (default): stop at the first bad line; skip: record it as dropped in the manifest")
    p.add_argument("--shard-samples", type=int, help="samples per tar (default 1000)")
    p.add_argument("--shard-bytes", type=int, help="bytes per tar, a target (default 536870912)")
    p.add_argument("--lines-per-unit", type=int, help="input lines per resumable work unit (default 5000)")
    p.add_argument("--max-images", type=int, help="images per record; a record with more is rejected (default 32)")
    p.add_argument("--allow-outside-paths", action="store_true", default=None,
                   help="let image paths leave the JSONL file's folder tree (absolute paths, ..)")
    p.add_argument("--allow-foreign-files", action="store_true", default=None,
                   help="write into an --out that holds files vlforge did not write (they are never deleted)")
    p.add_argument("--ray-address", help="join a Ray cluster (auto|HOST:PORT); default: a private local Ray")


def _run_render(args: argparse.Namespace) -> int:
    from vlforge.pipelines.render import load_render_recipe, run_render

    recipe = load_render_recipe(args.recipe, {k: getattr(args, k) for k in RENDER_KEYS if getattr(args, k) is not None})
    report = run_render(recipe.input, recipe.out, recipe.options(), recipe.ray_address, recipe.allow_foreign_files)
    print(report.summary(recipe.out), file=sys.stderr)
    return 0


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write rendered shards in another project's format")
    p.add_argument("--format", required=True, choices=("qwenvl-json",))
    p.add_argument("--input", required=True, nargs="+", help="shards: dir, brace pattern, files or fsspec URLs")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--allow-foreign-files", action="store_true",
                   help="write into an --out that holds files vlforge did not write (they are never replaced)")


def _run_export(args: argparse.Namespace) -> int:
    from vlforge.pipelines.export import export_qwenvl_json

    count = export_qwenvl_json(args.input, args.out, args.allow_foreign_files)
    print(f"wrote {count} records to {args.out / 'data.json'} (images in {args.out / 'images'})")
    return 0


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


COMMANDS = {"render": (_add_render, _run_render), "export": (_add_export, _run_export),
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
