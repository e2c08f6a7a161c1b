"""`vlforge tokenize`: exactly what the trainer feeds the model, one JSON line per sample, to debug masks.

Lines hold `{"key", "task", "input_ids", "labels"}` (labels -100 where not supervised; every image span is `<img>`,
N `<imgpad>`, `</img>`), in shard order; the tokenizer used, special tokens added, is saved beside the output as
`FILE.tokenizer/` so every id decodes. Samples the trainer cannot read are skipped and counted here too;
lengths are not checked (the trainer drops a sample longer than its `data.seq_len`).
"""

import argparse
import json
from pathlib import Path


def add_tokenize_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tokenize", help="write the token ids and labels the trainer would train on, as JSONL")
    p.add_argument("--shards", required=True, nargs="+", metavar="PATTERN",
                   help="shard directories, globs ('DIR/*.tar') or brace patterns")
    p.add_argument("--tokenizer", metavar="PATH",
                   help="tokenizer directory (tokenizer.json) or .gguf file; default: the embedded SmolLM2's")
    p.add_argument("--image-tokens", type=int, default=256, help="<imgpad> positions per image (adapter queries)")
    p.add_argument("--limit", type=int, metavar="K", help="stop after K samples")
    p.add_argument("--out", required=True, type=Path, metavar="FILE.jsonl")


def tokenizer_dir(out: Path) -> Path:
    return out.with_name(out.name + ".tokenizer")


def run_tokenize(args: argparse.Namespace) -> int:
    from vlforge.shards.atomic import commit, temp_path
    from vlforge.shards.listing import shard_urls
    from vlforge.training.data import DataStats, encoded_samples, tar_samples
    from vlforge.training.tokenizer import load_tokenizer

    if args.image_tokens < 1:
        raise ValueError(f"--image-tokens must be >= 1, got {args.image_tokens}")
    if args.limit is not None and args.limit < 1:
        raise ValueError(f"--limit must be >= 1, got {args.limit}")
    saved = tokenizer_dir(args.out)
    for path in (args.out, saved):
        if path.exists():
            raise ValueError(f"{path} exists; remove it or choose another --out")
    urls = shard_urls(args.shards)
    tok = load_tokenizer(args.tokenizer)
    stats = DataStats()
    samples = (sample for url in urls for sample in tar_samples(url, stats))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(args.out)
    written = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for encoded, _ in encoded_samples(samples, tok, args.image_tokens, stats):
                f.write(json.dumps({"key": encoded.key, "task": encoded.task, "input_ids": encoded.input_ids,
                                    "labels": encoded.labels}) + "\n")
                written += 1
                if written == args.limit:
                    break
        tok.save_pretrained(saved)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    commit(tmp, args.out)
    skipped = ", ".join(f"{reason}={n}" for reason, n in sorted(stats.corrupt.items())) or "none"
    print(f"tokenized {written} samples from {len(urls)} shards -> {args.out} (skipped: {skipped}); "
          f"tokenizer -> {saved}/")
    return 0
