"""One training config: model, data, optim, run sections; the Qwen-VL stage presets underneath.

A run's config is the stage preset, then the YAML file, then dotted command-line overrides (`optim.lr=1e-4`),
validated by pydantic with unknown keys refused: `vlforge.config.load_model`, so errors name the file and field path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict

from vlforge.config import ConfigError, load_model
from vlforge.training.data import DataConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelConfig(Strict):
    lm: str | None = None  # GGUF file or HF model directory; None: the embedded SmolLM2-135M-Instruct GGUF
    lm_config: dict[str, Any] | None = None  # random init from an HF config dict instead (needs model_type)
    tokenizer: str | None = None  # HF tokenizer dir or GGUF file; None: the LM's own
    vision: str = "vlforge-vit-small"  # built-in name, open_clip config JSON, or open_clip model name
    vision_weights: str | None = None  # local open_clip checkpoint (.safetensors or torch file); None: random
    adapter_heads: int | None = None  # None: the LM's attention heads
    attn_implementation: Literal["sdpa", "flash_attention_2"] = "sdpa"
    train_vision: bool = True
    train_adapter: bool = True
    train_lm: bool = True
    grad_checkpointing: bool = False
    compile: bool = False


class OptimConfig(Strict):
    lr: float  # peak
    min_lr: float
    warmup_steps: int
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    grad_clip: float = 1.0
    layer_decay: float = 0.95  # LR factor per ViT block below the top


class RunConfig(Strict):
    stage: Literal[1, 2, 3]
    steps: int
    global_batch: int  # sequences (packed rows of data.seq_len) per optimizer step, over all ranks
    seed: int = 0
    log_every: int = 1
    ckpt_every: int = 1000
    eval_every: int = 0  # 0: no evaluation
    eval_batches: int = 8
    fsdp: bool = False
    peak_tflops: float = 989.0  # per device, for MFU (H100/H200 bf16 dense)


class TrainConfig(Strict):
    model: ModelConfig
    data: DataConfig
    optim: OptimConfig
    run: RunConfig


STAGES: dict[int, dict[str, Any]] = {
    1: {"model": {"train_vision": True, "train_adapter": True, "train_lm": False},
        "data": {"image_size": 224},
        "optim": {"lr": 2e-4, "min_lr": 1e-6, "warmup_steps": 500},
        "run": {"global_batch": 30720, "steps": 50000}},
    2: {"model": {"train_vision": True, "train_adapter": True, "train_lm": True},
        "data": {"image_size": 448},
        "optim": {"lr": 5e-5, "min_lr": 1e-5, "warmup_steps": 400},
        "run": {"global_batch": 4096, "steps": 19000}},
    3: {"model": {"train_vision": False, "train_adapter": True, "train_lm": True},
        "data": {"image_size": 448},
        "optim": {"lr": 1e-5, "min_lr": 1e-6, "warmup_steps": 3000},
        "run": {"global_batch": 128, "steps": 8000}},
}


def parse_override(text: str) -> tuple[str, Any]:
    """'optim.lr=1e-4' -> ('optim.lr', 0.0001): the value parsed as YAML."""
    path, sep, value = text.partition("=")
    if not sep or not path:
        raise ConfigError(f"override {text!r} is not KEY.PATH=VALUE")
    return path, yaml.safe_load(value)


def _dotted(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'data': {'shards': X}} -> {'data.shards': X}: a nested mapping as the dotted overrides it amounts to."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update(_dotted(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_config(stage: int, path: str | Path | None = None, overrides: list[str] | None = None,
                values: dict | None = None) -> TrainConfig:
    """Stage preset <- YAML file <- `values` (nested, e.g. the command line's --shards) <- dotted overrides."""
    if stage not in STAGES:
        raise ConfigError(f"stage must be 1, 2 or 3, got {stage!r}")
    given = {**_dotted(values or {}), **dict(map(parse_override, overrides or []))}
    preset = {**STAGES[stage], "run": {**STAGES[stage]["run"], "stage": stage}}
    return load_model(path, TrainConfig, given, base=preset, flag="--config")
