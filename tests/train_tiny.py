"""Tiny real models for the trainer's model/loop tests: a byte-level BPE tokenizer trained here on the bundled task
examples, a 2-layer Llama config and a 2-layer open_clip ViT config, so a CPU step takes milliseconds."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LM_CONFIG = {"model_type": "llama", "vocab_size": 600, "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512,
             "tie_word_embeddings": True}
VIT_CONFIG = {"vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16}}


def tiny_tokenizer_dir(root: Path) -> Path:
    """A byte-level BPE (vocab 600) trained on the bundled example JSONL files, saved as an HF tokenizer dir."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    out = root / "tiny-tokenizer"
    if (out / "tokenizer.json").is_file():
        return out
    texts = [line for path in sorted((ROOT / "examples").rglob("*.jsonl")) for line in path.read_text().splitlines()]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(texts, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    tok.save_pretrained(out)
    return out


def tiny_setup(root: Path, **data: object) -> dict:
    """The model and data sections of a tiny config (tokenizer dir and ViT JSON written under `root`)."""
    root.mkdir(parents=True, exist_ok=True)
    vit = root / "tiny-vit.json"
    if not vit.is_file():  # written once: ranks of a torchrun test read it at the same time
        vit.write_text(json.dumps(VIT_CONFIG))
    return {"model": {"lm_config": LM_CONFIG, "tokenizer": str(tiny_tokenizer_dir(root)), "vision": str(vit)},
            "data": {"image_size": 32, "image_tokens": 4, "seq_len": 128, **data}}


def sample(tok, caption, images=1, key="k", n=4):
    """(input_ids, labels, n_images, key): image spans unsupervised, caption and end token supervised."""
    ids, labels = [], []
    for _ in range(images):
        span = [tok.convert_tokens_to_ids("<img>"), *[tok.convert_tokens_to_ids("<imgpad>")] * n,
                tok.convert_tokens_to_ids("</img>")]
        ids += span
        labels += [-100] * len(span)
    text = [*tok(caption).input_ids, tok.eos_token_id]
    return ids + text, labels + text, images, key


def batch(rows, pixels, pad_id=0):
    """rows: list of lists of samples packed together; pixels: Float[N,3,32,32] in order of appearance."""
    import torch

    from vlforge.training.data import Batch

    length = max(sum(len(s[0]) for s in row) for row in rows)
    fields = {name: torch.full((len(rows), length), fill, dtype=torch.long)
              for name, fill in (("input_ids", pad_id), ("labels", -100), ("position_ids", 0), ("seq_ids", -1))}
    for r, row in enumerate(rows):
        at = 0
        for sid, (ids, labels, _, _) in enumerate(row):
            span = slice(at, at + len(ids))
            fields["input_ids"][r, span] = torch.tensor(ids)
            fields["labels"][r, span] = torch.tensor(labels)
            fields["position_ids"][r, span] = torch.arange(len(ids))
            fields["seq_ids"][r, span] = sid
            at += len(ids)
    return Batch(**fields, images=pixels, keys=[[s[3] for s in row] for row in rows],
                 tasks=[["caption"] * len(row) for row in rows])
