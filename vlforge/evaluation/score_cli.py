"""`vlforge score`: score the outputs of any model against reference answers, captions or boxes."""

import argparse
import json
from pathlib import Path

from vlforge.evaluation.metrics import METRICS


def add_score_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="score predictions against references with a Qwen-VL benchmark metric")
    p.add_argument("--metric", required=True, choices=METRICS)
    p.add_argument("--predictions", required=True, type=Path, help='JSONL: {"id", "prediction"} a line')
    p.add_argument("--references", required=True, type=Path,
                   help='JSONL: {"id", "references": [...]} a line, plus "image_size": [w, h] for grounding')
    p.add_argument("--json", action="store_true", help='print one JSON object {"metric", "score", "count"}')
    p.add_argument("--out", type=Path, help="write scores.json and samples.parquet (one row per sample) here")


def run_score(args: argparse.Namespace) -> int:
    from vlforge.evaluation.files import join_inputs
    from vlforge.evaluation.metrics import score_items
    from vlforge.evaluation.output import Scored, check_out_dir, format_table, write_results

    if args.out is not None:
        check_out_dir(args.out)
    items = join_inputs(args.predictions, args.references, args.metric)
    scored = Scored(args.references.stem, score_items(args.metric, items), items)
    if args.out is not None:
        write_results(args.out, [scored], {"predictions": str(args.predictions), "references": str(args.references)})
    if args.json:
        r = scored.result
        print(json.dumps({"metric": r.metric, "score": r.score, "count": r.count, **r.extras}))
    else:
        print(format_table([scored]))
    return 0
