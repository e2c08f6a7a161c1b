"""VLModel: open_clip ViT -> position-aware adapter -> Hugging Face causal LM, as Qwen-VL wires them.

Each image span in the input is `<img>`, N `<imgpad>`, `</img>`; the adapter's N outputs per image replace the
`<imgpad>` embeddings in order of appearance (row-major), and the count is checked against the images. Packed
rows attend only within their own sample: a block-diagonal causal bool mask (`data.block_causal_mask`) goes to the
LM as a 4D `attention_mask`, which transformers hands unchanged to `torch.nn.functional.scaled_dot_product_attention`
(attn_implementation "sdpa"), with `position_ids` restarting at 0 per sample. With "flash_attention_2" no mask is
passed and transformers derives varlen boundaries from the restarting `position_ids`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vlforge.training.adapter import Adapter
from vlforge.training.config import ModelConfig
from vlforge.training.tokens import IGNORE_INDEX as IGNORE
from vlforge.training.vision import VisionTower


@dataclass
class Output:
    """Per-token loss aligned with `labels` (position t holds the loss of predicting token t; 0 where unsupervised)."""

    token_loss: torch.Tensor  # Float[B, L]
    supervised: torch.Tensor  # Bool[B, L]
    logits: torch.Tensor | None = None  # Float[B, L, V] when asked for


def load_lm(cfg: ModelConfig) -> nn.Module:
    """The causal LM: random init from `lm_config`, a GGUF file (dequantized to float32), or a local HF directory."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if cfg.lm_config is not None:
        config = dict(cfg.lm_config)
        model_type = config.pop("model_type", None)
        if model_type is None:
            raise ValueError("model.lm_config needs a model_type (e.g. llama)")
        return AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **config),
                                                attn_implementation=cfg.attn_implementation)
    if cfg.lm is None:
        from vlforge.training.tokenizer import default_gguf

        path = default_gguf()
    else:
        path = Path(cfg.lm)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ValueError(f"model.lm: no such GGUF file {str(path)!r}")
        return AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32,
                                                    attn_implementation=cfg.attn_implementation)
    if not (path / "config.json").is_file():
        raise ValueError(f"model.lm: {str(path)!r} is neither a GGUF file nor a Hugging Face model directory")
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation=cfg.attn_implementation)


def special_ids(tok: Any) -> dict[str, int]:
    """Id of every special token; a tokenizer that lacks one (or splits it) is an error naming them."""
    from vlforge.training.tokenizer import SPECIAL_TOKENS, token_id

    ids = {token: token_id(tok, token) for token in SPECIAL_TOKENS}
    lacking = [token for token, found in ids.items() if found is None]
    if lacking:
        raise ValueError(f"tokenizer lacks the special tokens {' '.join(lacking)} (load it with load_tokenizer)")
    return ids


def resize_embeddings(lm: nn.Module, vocab: int) -> None:
    """Grow the LM's embeddings (and untied head) to `vocab` rows; new rows are the mean of the old ones."""
    old = lm.get_input_embeddings().weight.shape[0]
    if vocab <= old:
        return
    lm.resize_token_embeddings(vocab, mean_resizing=False)
    with torch.no_grad():
        for module in {lm.get_input_embeddings(), lm.get_output_embeddings()} - {None}:
            module.weight[old:] = module.weight[:old].mean(dim=0)


def targets(labels: torch.Tensor, seq_ids: torch.Tensor) -> torch.Tensor:
    """`labels` minus what is never predicted: position 0 and each packed sample's first token (its previous
    position belongs to another sample)."""
    out = labels.clone()
    out[:, 0] = IGNORE
    out[:, 1:][seq_ids[:, 1:] != seq_ids[:, :-1]] = IGNORE
    return out


class VLModel(nn.Module):
    def __init__(self, cfg: ModelConfig, tok: Any, image_size: int, image_tokens: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.ids = special_ids(tok)
        self.imgpad_id = self.ids["<imgpad>"]
        self.image_size = image_size
        self.vision = VisionTower(cfg.vision, image_size)
        if cfg.vision_weights:
            self.vision.load_weights(cfg.vision_weights)
        self.lm = load_lm(cfg)
        resize_embeddings(self.lm, len(tok))
        width = self.lm.get_input_embeddings().weight.shape[1]
        heads = cfg.adapter_heads or self.lm.config.num_attention_heads
        self.adapter = Adapter(self.vision.width, width, image_tokens, heads)
        if cfg.grad_checkpointing:
            self.vision.set_grad_checkpointing(True)
            if hasattr(self.lm, "activation_checkpointing_enable"):  # transformers >= 5
                self.lm.activation_checkpointing_enable({"use_reentrant": False})
            else:
                self.lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def set_trainable(self, vision: bool, adapter: bool, lm: bool) -> None:
        """Per-stage freezing: frozen parameters get requires_grad=False (no gradient, not in the optimizer)."""
        for module, on in ((self.vision, vision), (self.adapter, adapter), (self.lm, lm)):
            module.requires_grad_(on)

    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        """[N,3,S,S] -> [N, image_tokens, LM width]; the ViT runs without autograd when it is frozen."""
        frozen = not any(p.requires_grad for p in self.vision.parameters())
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            patches = self.vision(images)
        return self.adapter(patches)

    def check_image_slots(self, batch: Any) -> None:
        """Every packed sample holds a whole number of images' worth of `<imgpad>`, and all of them match the images."""
        n = self.adapter.queries
        pads = batch.input_ids == self.imgpad_id
        total = int(pads.sum())
        if total == batch.images.shape[0] * n:
            return
        for row, keys in enumerate(batch.keys):
            for sid, key in enumerate(keys):
                count = int((pads[row] & (batch.seq_ids[row] == sid)).sum())
                if count % n:
                    raise ValueError(f"sample {key!r}: {count} <imgpad> tokens is not a multiple of "
                                     f"image_tokens={n} (tokenized with another image_tokens?)")
        keys = [k for row in batch.keys for k in row]
        raise ValueError(f"samples {keys}: {total // n} image spans but {batch.images.shape[0]} images")

    def embed(self, batch: Any) -> torch.Tensor:
        """Token embeddings with adapter outputs at the `<imgpad>` positions."""
        self.check_image_slots(batch)
        embeds = self.lm.get_input_embeddings()(batch.input_ids)
        if batch.images.shape[0] == 0:
            # Zero-weighted pass so every vision/adapter parameter still gets a (zero) gradient under DDP.
            dummy = torch.zeros(1, 3, self.image_size, self.image_size, device=embeds.device)
            return embeds + 0.0 * self.image_features(dummy).sum().to(embeds.dtype)
        feats = self.image_features(batch.images.to(embeds.device)).to(embeds.dtype)
        pads = (batch.input_ids == self.imgpad_id).unsqueeze(-1)
        return embeds.masked_scatter(pads, feats.reshape(-1, feats.shape[-1]))

    def forward(self, batch: Any, return_logits: bool = False) -> Output:
        from vlforge.training.data import block_causal_mask

        embeds = self.embed(batch)
        mask = None if self.cfg.attn_implementation == "flash_attention_2" else block_causal_mask(batch.seq_ids)
        logits = self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=batch.position_ids,
                         use_cache=False).logits
        labels = targets(batch.labels, batch.seq_ids)
        loss = F.cross_entropy(logits[:, :-1].float().flatten(0, 1), labels[:, 1:].flatten(), reduction="none",
                               ignore_index=IGNORE).view(labels.shape[0], -1)
        token_loss = F.pad(loss, (1, 0))
        return Output(token_loss, labels != IGNORE, logits if return_logits else None)
