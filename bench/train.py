"""Trainer throughput on CPU: packed rows against one padded sample per row, on the same samples, same run.

The samples: every bundled example task rendered by `vlforge render`'s unit code, plus cleaned caption pairs
(the layout `vlforge clean` writes) with captions of 3 to 80 words, read by the trainer's loader for one epoch in
shard order. The model: the trainer's VLModel with a small random Llama (SmolLM2's tokenizer and vocabulary) and a
small random ViT. Each mode trains one epoch (forward, backward, AdamW step); tokens/s counts real (non-padding)
tokens, the same number in both modes, so the ratio is the speed-up packing gives. Padding rows are padded to the
longest sample of their micro-batch (not to seq_len), the stronger baseline.
Also: the 448 px image transform against Qwen-VL's torchvision Compose, images/s.
Run: .venv/bin/python bench/train.py [--samples N] [--seq-len L] [--micro-batch B]
"""

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from jsonline import report

from vlforge.pipelines.render import RenderOptions, process_unit, split_units
from vlforge.shards.writer import ShardWriter
from vlforge.training.config import ModelConfig
from vlforge.training.data import DataConfig, build_loader
from vlforge.training.model import VLModel
from vlforge.training.tokenizer import load_tokenizer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tasks"
WORDS = ["a", "photo", "of", "the", "red", "blue", "small", "large", "old", "new", "cat", "dog", "cup", "table",
         "street", "river", "sign", "book", "with", "on", "under", "near", "two", "people", "tree", "car"]
LM = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 688, "num_hidden_layers": 4,
      "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 2048, "tie_word_embeddings": True}
VIT = {"vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 16, "head_width": 32}}


def make_shards(tmp: Path, captions: int) -> list[str]:
    for jsonl in sorted(EXAMPLES.glob("*.jsonl")):
        options = RenderOptions(task=jsonl.stem)
        for unit in split_units(jsonl, options, tmp / "rendered" / jsonl.stem):
            process_unit(unit)
    rng = random.Random(0)
    image = (EXAMPLES / "images" / "coffee.jpg").read_bytes()
    with ShardWriter(tmp / "cleaned", "web-00000", max_samples=100) as writer:
        for i in range(captions):
            caption = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 80)))
            writer.write(f"{i:06d}", {"jpg": image, "txt": caption, "json": {"uid": str(i), "source": "web"}},
                         {"uid": str(i), "source": "web"})
    return [str(tmp / "rendered" / "*" / "*.tar"), str(tmp / "cleaned")]


def epoch_batches(patterns: list[str], tok, packing: bool, args: argparse.Namespace) -> tuple[list, dict]:
    cfg = DataConfig(shards=patterns, image_size=64, image_tokens=16, seq_len=args.seq_len, packing=packing,
                     micro_batch=args.micro_batch, shuffle_buffer=0, epochs=1)
    loader = build_loader(cfg, tok)
    batches = list(loader)
    return batches, loader.stats.as_dict()


def train_epoch(model: VLModel, batches: list) -> float:
    """Seconds for forward + backward + AdamW over the batches (after one untimed warm-up step)."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step(batch) -> None:
        out = model(batch)
        (out.token_loss.sum() / out.supervised.sum().clamp(min=1)).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step(batches[0])
    t0 = time.perf_counter()
    for batch in batches:
        step(batch)
    return time.perf_counter() - t0


def bench_image_transform(n: int = 50) -> None:
    """The trainer's 448 px transform against Qwen-VL's torchvision Compose (same output), images/s."""
    import io

    from PIL import Image
    from torchvision import transforms

    from vlforge.training.data import CLIP_MEAN, CLIP_STD, image_transform

    im = Image.open(io.BytesIO((EXAMPLES / "images" / "coffee.jpg").read_bytes()))
    im.load()
    qwen_vl = transforms.Compose([transforms.Resize((448, 448), interpolation=transforms.InterpolationMode.BICUBIC),
                                  transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD)])
    rates = {}
    for name, transform in (("ours", image_transform(448)), ("torchvision", qwen_vl)):
        transform(im)
        t0 = time.perf_counter()
        for _ in range(n):
            transform(im)
        rates[name] = n / (time.perf_counter() - t0)
    print(f"image transform 448 px: {rates['ours']:,.0f} images/s, torchvision Compose {rates['torchvision']:,.0f}")
    report("train", "image_transform_448_images_per_s", rates["ours"], "images/s", rates["torchvision"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40, help="cleaned caption pairs besides the examples")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--micro-batch", type=int, default=2)
    args = parser.parse_args()
    bench_image_transform()
    torch.manual_seed(0)
    tok = load_tokenizer(None)
    with tempfile.TemporaryDirectory() as tmp:
        patterns = make_shards(Path(tmp), args.samples)
        vit = Path(tmp) / "vit.json"
        vit.write_text(json.dumps(VIT))
        model = VLModel(ModelConfig(lm_config={**LM, "vocab_size": len(tok)}, vision=str(vit)), tok, 64, 16)
        results = {}
        for mode, packing in (("packed", True), ("padded", False)):
            batches, stats = epoch_batches(patterns, tok, packing, args)
            seconds = train_epoch(model, batches)
            real = stats["tokens"] - stats["padding_tokens"]
            results[mode] = {"tokens_per_s": real / seconds, "padding_share": stats["padding_share"],
                             "rows": sum(b.input_ids.shape[0] for b in batches), "samples": stats["used"],
                             "real_tokens": real, "seconds": seconds}
            print(f"{mode}: {stats['used']} samples in {results[mode]['rows']} rows, {real} real tokens, "
                  f"padding {stats['padding_share']:.1%}, {seconds:.1f} s, {real / seconds:,.0f} tokens/s")
    packed, padded = results["packed"], results["padded"]
    assert packed["real_tokens"] == padded["real_tokens"], "both modes must train on the same samples"
    print(f"packing: {packed['tokens_per_s'] / padded['tokens_per_s']:.2f}x the tokens/s of padding "
          f"(attention: SDPA with a block-causal mask; {torch.get_num_threads()} CPU threads)")
    report("train", "tokens_per_s_packed_vs_padded", packed["tokens_per_s"], "tokens/s", padded["tokens_per_s"])
    report("train", "padding_share_packed_vs_padded", packed["padding_share"], "share", padded["padding_share"])


if __name__ == "__main__":
    main()
