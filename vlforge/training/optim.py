"""AdamW over the trainable parameters only, with Qwen-VL's layer-wise LR decay over the ViT blocks.

A ViT block at depth i (0 = first of L) gets `layer_decay ** (L - i)` of the LR, the patch embedding, class
token, position table and pre-norm `layer_decay ** (L + 1)`; the adapter and the LM get the full LR. Biases,
norms and other 1-D parameters get no weight decay. Each group carries `lr_scale`; the loop sets
`lr = lr_at(step) * lr_scale`.
"""

from __future__ import annotations

import torch
from torch import nn

from vlforge.training.config import OptimConfig


def vit_depth(name: str, blocks: int) -> int:
    """0 for the embeddings, i + 1 for block i, blocks + 1 above the blocks (name relative to the ViT)."""
    if name.startswith("visual.transformer.resblocks."):
        return int(name.split(".")[3]) + 1
    if name.startswith(("visual.conv1", "visual.class_embedding", "visual.positional_embedding", "visual.ln_pre")):
        return 0
    return blocks + 1


def lr_scales(model: nn.Module, layer_decay: float) -> dict[str, float]:
    """LR factor of every parameter of `model` (a VLModel) by name."""
    blocks = len(model.vision.blocks)
    scales = {}
    for name, _ in model.named_parameters():
        if name.startswith("vision."):
            scales[name] = layer_decay ** (blocks + 1 - vit_depth(name.removeprefix("vision."), blocks))
        else:
            scales[name] = 1.0
    return scales


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    """AdamW with one group per (LR factor, decay or not); frozen parameters are left out."""
    scales = lr_scales(model, cfg.layer_decay)
    groups: dict[tuple[float, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = param.ndim >= 2 and not name.endswith(("positional_embedding", "class_embedding", "adapter.query"))
        groups.setdefault((scales[name], decay), []).append(param)
    if not groups:
        raise ValueError("nothing to train: every parameter is frozen (model.train_vision/train_adapter/train_lm)")
    params = [{"params": ps, "lr_scale": scale, "weight_decay": cfg.weight_decay if decay else 0.0}
              for (scale, decay), ps in groups.items()]
    return torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps)
