"""`vlforge train` and `vlforge generate` (also `torchrun -m vlforge.training`): arguments only; torch loads lazily."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--stage", type=int, required=True, choices=(1, 2, 3), help="Qwen-VL stage preset")
    p.add_argument("--shards", nargs="+", help="shard dirs, globs or brace patterns (default: data.shards of --config)")
    p.add_argument("--out", type=Path, required=True, help="run directory (metrics.jsonl, loss.png, ckpt/)")
    p.add_argument("--config", type=Path, help="YAML with model/data/optim/run sections over the stage preset")
    p.add_argument("--init", type=Path, help="start from this checkpoint directory (e.g. the previous stage's)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--epochs", type=int, help="one pass (or N) over the shards instead of an endless stream")
    p.add_argument("--fsdp", action="store_true", help="FSDP2 fully_shard instead of DDP (under torchrun)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY.PATH=VALUE",
                   help="override one config value, e.g. --set optim.lr=1e-4 --set run.steps=100")


def add_train_parser(sub: argparse._SubParsersAction) -> None:
    add_train_arguments(sub.add_parser("train", help="train a Qwen-VL-style model on vlforge shards"))


def train_config(args: argparse.Namespace):
    from vlforge.training.config import load_config

    values: dict = {}
    if args.shards:
        values["data"] = {"shards": [{"pattern": p} for p in args.shards]}
    overrides = list(args.overrides)
    if args.epochs is not None:
        overrides.append(f"data.epochs={args.epochs}")
    if args.fsdp:
        overrides.append("run.fsdp=true")
    cfg = load_config(args.stage, args.config, overrides, values)
    if not cfg.data.shards:
        raise ValueError("no shards: pass --shards or set data.shards in --config")
    return cfg


def run_train(args: argparse.Namespace) -> int:
    cfg = train_config(args)
    from vlforge.training.loop import train

    train(cfg, args.out, init=args.init, resume=args.resume)
    return 0


def add_generate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="greedy decoding from a checkpoint on one or more images")
    p.add_argument("--checkpoint", type=Path, required=True, help="RUN_DIR/ckpt")
    p.add_argument("--image", type=Path, action="append", default=[], help="an image (repeat for several)")
    p.add_argument("--prompt", required=True, help='e.g. "Generate the caption in English:"')
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--draw", type=Path, help="write the first image with every <box>/<quad> and its <ref> drawn")


def run_generate(args: argparse.Namespace) -> int:
    from vlforge.training.generate import draw, load_for_generation, open_images
    from vlforge.training.generate import generate as decode

    images = open_images(args.image)
    model, tok = load_for_generation(args.checkpoint)
    text = decode(model, tok, [images], [args.prompt], args.max_new_tokens)[0]
    print(text)
    if args.draw:
        if not images:
            raise ValueError("--draw needs an --image")
        count = draw(images[0], text, args.draw)
        print(f"drew {count} boxes/quads on {args.draw}")
    return 0
