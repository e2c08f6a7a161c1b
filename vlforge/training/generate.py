"""Greedy decoding from a checkpoint: `vlforge generate`, and the batched `generate(...)` evaluation calls.

The prompt is built as training builds a sample's prompt (`<img></img>` per image, then the text, through
`encode_sample`), left-padded into one batch; the adapter outputs fill the `<imgpad>` slots and the LM decodes
greedily with its KV cache (Hugging Face `generate` on `inputs_embeds`). `draw` puts every `<box>`/`<quad>` of an
answer on the image, labelled with its `<ref>`, mapping the [0, 1000) grid back to pixels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from PIL import Image

from vlforge.formats.sample import Sample
from vlforge.formats.segments import IMAGE_SLOT, Segment
from vlforge.training.checkpoint import load_model_weights, read_state
from vlforge.training.config import TrainConfig
from vlforge.training.model import VLModel
from vlforge.training.tokens import CHAT_TASK, encode_sample


def open_images(paths: list[Path]) -> list[Image.Image]:
    from vlforge.shards.imageio import open_image

    images = []
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"--image: no such file {str(path)!r}")
        images.append(open_image(path))
    return images


def load_for_generation(ckpt: Path, device: str | None = None) -> tuple[VLModel, Any]:
    """Rebuild the model from the checkpoint alone (LM config, vision config, tokenizer saved in it) and load it."""
    from vlforge.training.tokenizer import load_tokenizer

    ckpt = Path(ckpt)
    cfg = TrainConfig.model_validate(read_state(ckpt)["config"])
    model_cfg = cfg.model.model_copy(update={
        "lm": None, "lm_config": json.loads((ckpt / "lm_config.json").read_text()),
        "vision": str(ckpt / "vision.json"), "vision_weights": None, "grad_checkpointing": False})
    tok = load_tokenizer(ckpt / "tokenizer")
    model = VLModel(model_cfg, tok, cfg.data.image_size, cfg.data.image_tokens)
    load_model_weights(model, ckpt)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return model.to(device).eval(), tok


def prompt_ids(tok: Any, prompt: str, n_images: int, image_tokens: int) -> list[int]:
    """A training-style prompt: `<img></img>` per image, then the text, unsupervised and with no end token
    (encode_sample appends none for the chat task)."""
    sample = Sample(key="prompt", task=CHAT_TASK, source="generate",
                    segments=[Segment(IMAGE_SLOT * n_images + prompt, False)], image_files=[("", b"")] * n_images)
    return encode_sample(sample, tok, image_tokens).input_ids


@torch.no_grad()
def generate(model: VLModel, tok: Any, images: list[list[Image.Image]], prompts: list[str],
             max_new_tokens: int = 64) -> list[str]:
    """Greedy answers, one per (images, prompt) pair, decoded with special tokens kept (`<box>`, `<ref>`)."""
    from vlforge.training.data import image_transform
    from vlforge.training.tokenizer import end_token_id, pad_token_id

    if len(images) != len(prompts):
        raise ValueError(f"generate: {len(images)} image lists but {len(prompts)} prompts")
    device = next(model.parameters()).device
    rows = [prompt_ids(tok, p, len(ims), model.adapter.queries) for ims, p in zip(images, prompts, strict=True)]
    width = max(map(len, rows))
    pad = pad_token_id(tok)
    input_ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    transform = image_transform(model.image_size)
    pixels = [transform(im) for ims in images for im in ims]  # transform makes RGB as training does (to_rgb)
    batch = SimpleNamespace(input_ids=input_ids, seq_ids=mask - 1, keys=[[f"prompt {i}"] for i in range(len(rows))],
                            images=torch.stack(pixels).to(device) if pixels else torch.zeros(0, 3, 1, 1))
    stops = [end_token_id(tok), model.ids["<|im_end|>"]]
    out = model.lm.generate(inputs_embeds=model.embed(batch), attention_mask=mask, max_new_tokens=max_new_tokens,
                            do_sample=False, eos_token_id=stops, pad_token_id=pad)
    answers = []
    for ids in out.tolist():
        cut = next((i for i, t in enumerate(ids) if t in stops), len(ids))
        answers.append(tok.decode(ids[:cut], skip_special_tokens=False))
    return answers


_SHAPE = re.compile(r"(?:<ref>(.*?)</ref>)?<(box|quad)>(.*?)</\2>", re.S)


def shapes(text: str) -> list[tuple[str, str, list[int]]]:
    """(ref label, 'box'|'quad', grid numbers) of every well-formed box (4 numbers) or quad (8); a box without
    its own `<ref>` takes the last one seen."""
    out, label = [], ""
    for ref, kind, body in _SHAPE.findall(text):
        label = ref or label
        numbers = [int(n) for n in re.findall(r"\d+", body)]
        if len(numbers) == (4 if kind == "box" else 8):
            out.append((label, kind, numbers))
    return out


def draw(image: Image.Image, text: str, out: Path) -> int:
    """Write `image` with every box/quad of `text` drawn and labelled; returns how many were drawn."""
    from PIL import ImageDraw

    canvas = image.convert("RGB")
    pen = ImageDraw.Draw(canvas)
    w, h = canvas.size
    found = shapes(text)
    for label, kind, numbers in found:
        points = [(x * w / 1000, y * h / 1000) for x, y in zip(numbers[::2], numbers[1::2], strict=True)]
        if kind == "box":
            pen.rectangle([points[0], points[1]], outline=(255, 0, 0), width=2)
        else:
            pen.polygon(points, outline=(0, 160, 255), width=2)
        if label:
            pen.text((points[0][0] + 2, points[0][1] + 2), label, fill=(255, 255, 0))
    canvas.save(out)
    return len(found)
