"""Run under torchrun by test_train_dist.py (or alone for world size 1): three train_step()s of a tiny model on
four fixed micro-batches of different lengths, split over the ranks; rank 0 writes losses and final weights.

usage: python train_dist_worker.py ROOT OUT.pt [--fsdp]
"""

import sys
from pathlib import Path

import torch
from train_tiny import batch, sample, tiny_setup

from vlforge.training.checkpoint import full_model_state
from vlforge.training.config import load_config
from vlforge.training.loop import build_model, init_distributed, train_step, wrap
from vlforge.training.optim import build_optimizer
from vlforge.training.tokenizer import load_tokenizer


def micro_batches(tok) -> list:
    """Four micro-batches of different shapes, images and supervised-token counts (same on every rank)."""
    gen = torch.Generator().manual_seed(0)
    rows = [[[sample(tok, "a cat on a mat", 1, "a")], [sample(tok, "hi", 2, "b"), sample(tok, "words", 0, "c")]],
            [[sample(tok, "a much longer caption about a red bicycle", 1, "d")]],
            [[sample(tok, "text only", 0, "e")], [sample(tok, "two pictures", 2, "f")]],
            [[sample(tok, "x", 1, "g"), sample(tok, "y z", 1, "h")]]]
    out = []
    for row in rows:
        images = sum(s[2] for r in row for s in r)
        out.append(batch(row, torch.randn(images, 3, 32, 32, generator=gen)))
    return out


def main() -> None:
    root, out, fsdp = Path(sys.argv[1]), Path(sys.argv[2]), "--fsdp" in sys.argv
    torch.set_num_threads(1)
    raw = tiny_setup(root)
    raw["data"]["shards"] = []
    cfg = load_config(2, values=raw, overrides=["optim.lr=1e-2", "optim.warmup_steps=1", f"run.fsdp={fsdp}"])
    d = init_distributed()
    tok = load_tokenizer(cfg.model.tokenizer)
    torch.manual_seed(0)
    model = build_model(cfg, tok, None)
    wrapped = wrap(model, cfg, d)
    optimizer = build_optimizer(model, cfg.optim)
    params = [p for p in model.parameters() if p.requires_grad]
    mine = micro_batches(tok)[d.rank::d.world]
    losses = [train_step(wrapped, wrapped, params, optimizer, mine, d, 1.0) for _ in range(3)]
    state = full_model_state(model)
    if d.main:
        torch.save({"losses": losses, "state": state}, out)
    if d.world > 1:  # tear down together, as the trainer's checkpoint does: one CI run saw rank 1 abort in
        torch.distributed.barrier()  # gloo ("terminate called without an active exception") while rank 0 saved
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
