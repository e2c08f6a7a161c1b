"""`vlforge mix --recipe MIX.yaml --out DIR`: a stage-2 multi-task mixture from the sources on disk.

This module is only the command line (imported by `vlforge.cli` at start, so it imports nothing heavy);
the work is in mix_recipe (recipe), mix_plan (counts and order), mix_unit (one unit), mix_run (the run).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_mix_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("mix", help="mix annotated sources into stage-2 multi-task shards")
    p.add_argument("--recipe", required=True, help="mix recipe YAML (see recipes/mix-stage2.yaml)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--seed", type=int, help="recipe key seed")
    p.add_argument("--total", type=int, help="recipe key total: samples in the mix")
    p.add_argument("--exclude-eval", nargs="+", type=Path, metavar="DIR",
                   help="recipe key exclude_eval: drop samples whose image is in these evaluation sets")
    p.add_argument("--drop-duplicates", choices=("none", "sha256", "phash"),
                   help="recipe key drop_duplicates: drop samples whose image a source listed earlier also has "
                        "(default none: duplicates are only reported)")
    p.add_argument("--allow-outside-paths", action="store_const", const=True,
                   help="recipe key allow_outside_paths: read image files outside their source's image folders "
                        "(default: such a sample is dropped, reason image_outside_root)")
    p.add_argument("--allow-foreign-files", action="store_true",
                   help="write into an --out that holds files vlforge did not write (they are never deleted)")
    p.add_argument("--ray-address", help="join a Ray cluster (auto|HOST:PORT); default: local Ray")
    p.add_argument("--num-cpus", type=int, help="CPUs of the local Ray")
    return p


def run_mix(args: argparse.Namespace) -> int:
    from vlforge.pipelines.mix_recipe import load_mix_recipe
    from vlforge.pipelines.mix_report import format_summary
    from vlforge.pipelines.mix_run import MIX_FILE, build_mixture

    overrides = {"seed": args.seed, "total": args.total, "exclude_eval": args.exclude_eval,
                 "drop_duplicates": args.drop_duplicates,
                 "allow_outside_paths": args.allow_outside_paths, "ray_address": args.ray_address,
                 "num_cpus": args.num_cpus}
    recipe = load_mix_recipe(args.recipe, overrides)
    result = build_mixture(recipe, args.out, allow_foreign_files=args.allow_foreign_files)
    print(result.report.summary(args.out), file=sys.stderr)
    print(format_summary(result.summary))
    print(f"realised mix: {args.out / MIX_FILE}")
    return 0
