"""Checkpoints: everything a run needs to continue, and everything `vlforge generate` needs to rebuild the model.

`RUN_DIR/ckpt/` holds `model.safetensors` (full state dict, gathered under FSDP), `optimizer.pt` (full optimizer
state keyed by parameter name), `state.json` (step, world size, data position per rank, config), `rng-RANK.pt`,
`tokenizer/` (with the special tokens), `lm_config.json` and `vision.json` (the LM's HF config and the ViT config,
so the architecture is rebuilt without the original weights or config files). A new checkpoint is written beside
the old one and swapped in by renames, so an interrupted save never leaves a half-written `ckpt/`.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from vlforge.training.vision import read_state_dict

FULL = {"full_state_dict": True, "cpu_offload": True}


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(**FULL))


def rng_state() -> dict[str, Any]:
    """Every RNG of this process as tensors and plain values (so it loads with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, py_gauss = random.getstate()
    state = {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                        has_gauss, gauss],
             "python": [version, torch.tensor(words, dtype=torch.int64), py_gauss]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, words, py_gauss = state["python"]
    random.setstate((version, tuple(words.tolist()), py_gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save(run_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer, tok: Any, *, step: int,
         world_size: int, rank: int, data_position: int, config: dict) -> Path:
    """Write RUN_DIR/ckpt atomically (every rank calls this; rank 0 writes the shared files)."""
    from safetensors.torch import save_file
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    final, tmp = run_dir / "ckpt", run_dir / "ckpt.tmp"
    state = full_model_state(model)
    optim_state = get_optimizer_state_dict(model, optimizer, options=StateDictOptions(**FULL))
    positions = [None] * world_size
    rngs = [None] * world_size
    if world_size > 1:
        dist.all_gather_object(positions, data_position)
        dist.all_gather_object(rngs, rng_state())
    else:
        positions, rngs = [data_position], [rng_state()]
    if rank == 0:
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        seen: set[int] = set()
        tensors = {}
        for key, value in state.items():  # tied weights share storage: safetensors wants distinct tensors
            tensors[key] = value.clone() if value.data_ptr() in seen else value.contiguous()
            seen.add(value.data_ptr())
        save_file(tensors, tmp / "model.safetensors")
        torch.save(optim_state, tmp / "optimizer.pt")
        for r, rng in enumerate(rngs):
            torch.save(rng, tmp / f"rng-{r}.pt")
        tok.save_pretrained(tmp / "tokenizer")
        (tmp / "vision.json").write_text(json.dumps({"vision_cfg": model.vision.config}, indent=1))
        (tmp / "lm_config.json").write_text(json.dumps(model.lm.config.to_dict(), indent=1, default=str))
        (tmp / "state.json").write_text(json.dumps({"step": step, "world_size": world_size,
                                                    "data_position": positions, "config": config}, indent=1))
        old = run_dir / "ckpt.old"
        if final.exists():
            final.rename(old)
        tmp.rename(final)
        if old.exists():
            shutil.rmtree(old)
    if world_size > 1:
        dist.barrier()
    return final


def read_state(ckpt: Path) -> dict:
    path = Path(ckpt) / "state.json"
    if not path.is_file():
        raise ValueError(f"{str(ckpt)!r} is not a vlforge checkpoint directory (no state.json)")
    return json.loads(path.read_text())


def load_model_weights(model: nn.Module, ckpt: Path) -> None:
    """Load model.safetensors into `model` (a plain VLModel); another architecture is a clear error.

    The ViT position table is interpolated when the checkpoint was trained at another resolution (stage 1 -> 2).
    """
    path = Path(ckpt) / "model.safetensors"
    if not path.is_file():
        raise ValueError(f"{str(ckpt)!r} is not a vlforge checkpoint directory (no model.safetensors)")
    state = model.vision.adapt_state(read_state_dict(path), prefix="vision.visual.")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                   for k in set(state) & set(own) if state[k].shape != own[k].shape)
    if missing or unexpected or wrong:
        raise ValueError(f"checkpoint {str(ckpt)!r} is from another architecture: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}, shape mismatch {wrong[:3]} "
                         f"({len(missing)}/{len(unexpected)}/{len(wrong)} in all)")
    model.load_state_dict(state)


def resume(ckpt: Path, model: nn.Module, optimizer: torch.optim.Optimizer, *, world_size: int, rank: int) -> dict:
    """Restore model, optimizer and this rank's RNG; returns state.json. Another world size is refused."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

    state = read_state(ckpt)
    if state["world_size"] != world_size:
        raise ValueError(f"{ckpt} was written by {state['world_size']} processes, this run has {world_size}: "
                         "resume with the same number of processes, or start a new run from it with --init")
    weights = read_state_dict(Path(ckpt) / "model.safetensors")
    set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))
    optim_state = torch.load(Path(ckpt) / "optimizer.pt", map_location="cpu", weights_only=True)
    set_optimizer_state_dict(model, optimizer, optim_state, options=StateDictOptions(full_state_dict=True))
    set_rng_state(torch.load(Path(ckpt) / f"rng-{rank}.pt", weights_only=True))
    return state
