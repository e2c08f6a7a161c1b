"""Qwen-VL's position-aware vision-language adapter: N learnable queries cross-attend to the ViT's patch tokens.

One multi-head cross-attention layer (Qwen-VL's `Resampler` in visual.py): keys/values are the patch features
projected from the ViT width to the LM width (`kv_proj`), layer-normed (`ln_kv`); the queries are layer-normed
(`ln_q`); a fixed 2D sin-cos position embedding is added to the queries (a √N×√N grid) and to the keys (the
patch grid), then `ln_post` and a square projection. Output: N vectors of the LM width per image.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[len(positions), dim]: sin of positions·ω in the first half, cos in the second, ω_i = 10000^(-2i/dim)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64).reshape(-1, 1) * omega.reshape(1, -1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(dim: int, grid: int) -> torch.Tensor:
    """[grid*grid, dim] fixed 2D position embedding over a row-major grid: the first dim/2 channels encode the
    column (x), the rest the row (y), as Qwen-VL's (and MAE's) `get_2d_sincos_pos_embed` orders them."""
    if dim % 4:
        raise ValueError(f"2D sin-cos embedding needs a width divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([sincos_1d(dim // 2, cols.flatten()), sincos_1d(dim // 2, rows.flatten())], dim=1).float()


class Adapter(nn.Module):
    """[B, P, vit_width] patch tokens (P a square grid) -> [B, queries, lm_width]."""

    def __init__(self, vit_width: int, lm_width: int, queries: int = 256, heads: int = 8) -> None:
        super().__init__()
        grid = math.isqrt(queries)
        if grid * grid != queries:
            raise ValueError(f"image_tokens must be a square number (64, 144, 256, 400), got {queries}")
        if lm_width % heads:
            raise ValueError(f"adapter heads {heads} do not divide the LM width {lm_width}")
        self.queries = queries
        self.query = nn.Parameter(torch.empty(queries, lm_width))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.register_buffer("query_pos", sincos_2d(lm_width, grid), persistent=False)
        self.kv_proj = nn.Linear(vit_width, lm_width, bias=False) if vit_width != lm_width else nn.Identity()
        self.ln_q = nn.LayerNorm(lm_width, eps=1e-6)
        self.ln_kv = nn.LayerNorm(lm_width, eps=1e-6)
        self.attn = nn.MultiheadAttention(lm_width, heads, batch_first=True)
        self.ln_post = nn.LayerNorm(lm_width, eps=1e-6)
        self.proj = nn.Parameter(lm_width ** -0.5 * torch.randn(lm_width, lm_width))

    def key_pos(self, patches: int, like: torch.Tensor) -> torch.Tensor:
        grid = math.isqrt(patches)
        if grid * grid != patches:
            raise ValueError(f"adapter expects a square patch grid, got {patches} patches")
        return sincos_2d(like.shape[-1], grid).to(device=like.device, dtype=like.dtype)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        kv = self.ln_kv(self.kv_proj(patches))
        q = self.ln_q(self.query).unsqueeze(0).expand(kv.shape[0], -1, -1)
        out, _ = self.attn(q + self.query_pos.to(q.dtype), kv + self.key_pos(kv.shape[1], kv), kv, need_weights=False)
        return self.ln_post(out) @ self.proj
