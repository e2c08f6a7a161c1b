"""The vision tower: an open_clip VisionTransformer that returns every patch token of its last block (no CLS).

Qwen-VL feeds the adapter the last block's patch features; open_clip's pooling, final norm and projection are
pruned away (they would be parameters without a gradient). The model is built at the stage's resolution; a
checkpoint trained at another resolution has its position table interpolated (open_clip's bicubic resize).
Weights come from a local file only: an open_clip checkpoint (`visual.*` keys) or a vlforge vision state dict,
`.safetensors` or a torch file loaded with `weights_only=True`.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

# The embedded default: a small ViT with random weights (no vision weights ship offline).
BUILTIN = {
    "vlforge-vit-small": {"image_size": 224, "layers": 6, "width": 384, "head_width": 64, "patch_size": 14,
                          "mlp_ratio": 4.0},
}


def vision_config(spec: str) -> dict:
    """The open_clip `vision_cfg` dict of a built-in name, an open_clip config JSON path, or an open_clip model name."""
    import open_clip

    if spec in BUILTIN:
        return dict(BUILTIN[spec])
    if spec.endswith(".json"):
        path = Path(spec)
        if not path.is_file():
            raise ValueError(f"model.vision: no such open_clip config file {spec!r}")
        config = json.loads(path.read_text())
    else:
        config = open_clip.get_model_config(spec)
        if config is None:
            raise ValueError(f"model.vision: {spec!r} is neither a built-in ({', '.join(BUILTIN)}), "
                             "an open_clip config JSON nor an open_clip model name")
    cfg = dict(config.get("vision_cfg", config))
    if cfg.get("timm_model_name") or isinstance(cfg.get("layers"), (list, tuple)):
        raise ValueError(f"model.vision: {spec!r} is not an open_clip VisionTransformer")
    return cfg


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from a local file: safetensors, or a torch file loaded with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no such checkpoint file {str(path)!r}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    return {k.removeprefix("module."): v for k, v in state.items()}


class VisionTower(nn.Module):
    """images Float[N,3,S,S] -> patch tokens Float[N, (S/patch)², width]."""

    def __init__(self, spec: str, image_size: int) -> None:
        super().__init__()
        from open_clip.model import _build_vision_tower

        cfg = vision_config(spec)
        cfg["image_size"] = image_size
        patch = cfg.get("patch_size", 16)
        if image_size % patch:
            raise ValueError(f"image_size {image_size} is not a multiple of the ViT patch size {patch}")
        cfg.update(attentional_pool=False, output_tokens=False)
        self.config = cfg
        self.visual = _build_vision_tower(cfg["width"], cfg)
        self.visual.prune_intermediate_layers(indices=1, prune_norm=True, prune_head=True)
        self.width = cfg["width"]
        self.patches = (image_size // patch) ** 2

    @property
    def blocks(self) -> nn.ModuleList:
        return self.visual.transformer.resblocks

    def set_grad_checkpointing(self, enable: bool) -> None:
        self.visual.set_grad_checkpointing(enable)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.visual.forward_intermediates(images, indices=1, intermediates_only=True, output_fmt="NLC")
        return out["image_intermediates"][-1].contiguous()  # a copy, not a view of the CLS-prefixed tokens

    def adapt_state(self, state: dict[str, torch.Tensor], prefix: str = "visual.") -> dict[str, torch.Tensor]:
        """`state` (keys under `prefix`) with the position table resized to this tower's grid, in place."""
        from open_clip.model import resize_pos_embed

        key = prefix + "positional_embedding"
        if key in state:
            moved = {"visual.positional_embedding": state[key]}
            resize_pos_embed(moved, self)
            state[key] = moved["visual.positional_embedding"]
        return state

    def load_weights(self, path: str | Path) -> None:
        """Load a local open_clip checkpoint (or a vision-only state dict); text tower and head keys are ignored."""
        state = read_state_dict(path)
        if not any(k.startswith("visual.") for k in state):
            state = {f"visual.{k}": v for k, v in state.items()}
        own = self.state_dict()
        state = self.adapt_state({k: v for k, v in state.items() if k in own})
        missing = sorted(set(own) - set(state))
        wrong = sorted(k for k in state if state[k].shape != own[k].shape)
        if missing or wrong:
            raise ValueError(f"vision weights {str(path)!r} do not fit model.vision: "
                             f"missing {missing[:5]}, shape mismatch {wrong[:5]}")
        self.load_state_dict(state)
