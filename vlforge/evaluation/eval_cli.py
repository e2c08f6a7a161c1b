"""`vlforge eval`: greedy generation with a trained checkpoint over rendered evaluation shards, then the
`vlforge score` metrics per benchmark. torch and the model code load only when the command runs."""

import argparse
import json
from pathlib import Path

from vlforge.evaluation.metrics import METRICS


def add_eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="answer evaluation shards with a checkpoint and score the answers")
    p.add_argument("--checkpoint", required=True, type=Path, help="RUN_DIR/ckpt written by vlforge train")
    p.add_argument("--shards", required=True, nargs="+", help="rendered evaluation shards: dirs, globs, brace patterns")
    p.add_argument("--metric", required=True, choices=METRICS)
    p.add_argument("--out", type=Path, help="write scores.json and samples.parquet (one row per sample) here")
    p.add_argument("--batch-size", type=int, default=8, help="prompts decoded together")
    p.add_argument("--max-new-tokens", type=int, help="default: eval_mm's budget for the metric (vqa 10, cider 30, "
                                                      "grounding 28, anls/relaxed 100)")
    p.add_argument("--limit", type=int, help="only the first N samples")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available; bf16 autocast on GPU)")
    p.add_argument("--json", action="store_true", help='print {"metric", "score", "count", "benchmarks"} as JSON')


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from vlforge.evaluation.evaluate import evaluate
    from vlforge.evaluation.output import check_out_dir, format_table, write_results
    from vlforge.evaluation.samples import read_eval_samples
    from vlforge.training.generate import generate, load_for_generation

    if args.out is not None:
        check_out_dir(args.out)
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be at least 1, got {args.limit}")
    model, tok = load_for_generation(args.checkpoint, args.device)
    device = next(model.parameters()).device

    def answer(images, texts, max_new_tokens):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            return generate(model, tok, images, texts, max_new_tokens)

    scored = evaluate(read_eval_samples(args.shards), answer, args.metric, batch_size=args.batch_size,
                      max_new_tokens=args.max_new_tokens, limit=args.limit)
    if args.out is not None:
        write_results(args.out, scored, {"checkpoint": str(args.checkpoint), "shards": args.shards})
    if args.json:
        count = sum(s.result.count for s in scored)
        total = sum(s.result.score * s.result.count for s in scored)
        print(json.dumps({"metric": args.metric, "score": total / count, "count": count,
                          "benchmarks": [s.summary() for s in scored]}))
    else:
        print(format_table(scored))
    return 0
