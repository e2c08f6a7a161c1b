"""A Sample -> the token ids and labels the model trains on: what `vlforge tokenize` prints and the loader packs.

Segments are tokenized one by one, as Qwen-VL's finetune.py tokenizes turn by turn, so a span's labels are
exactly its own tokens. Each `<img></img>` becomes `<img>`, `image_tokens` x `<imgpad>`, `</img>` (the adapter's
outputs replace the pads), never supervised; the text on either side of it is tokenized separately, as Qwen-VL's
tokenizer splits at image tags. The end-of-text token ends every sample, supervised, except `chat` samples: their
last tokens are the supervised `<|im_end|>\\n`, as in finetune.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from vlforge.formats.sample import Sample, SampleError
from vlforge.formats.segments import IMAGE_SLOT
from vlforge.training.tokenizer import end_token_id, special_id

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
CHAT_TASK = "chat"


@dataclass
class Encoded:
    key: str
    task: str
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where not supervised; not shifted (the model shifts)
    n_images: int

    def __len__(self) -> int:
        return len(self.input_ids)


def encode_sample(sample: Sample, tok: PreTrainedTokenizerBase, image_tokens: int) -> Encoded:
    """Token ids and labels of one sample; SampleError (reason `image_count`) when slots and images differ."""
    if sample.image_slots() != len(sample.images):
        raise SampleError("image_count", f"sample {sample.key}",
                          f"{sample.image_slots()} {IMAGE_SLOT} slots but {len(sample.images)} images")
    image_span = [special_id(tok, "<img>"), *[special_id(tok, "<imgpad>")] * image_tokens, special_id(tok, "</img>")]
    # (text piece, supervised) in order; None marks an image span
    pieces: list[tuple[str, bool] | None] = []
    for seg in sample.segments:
        for i, text in enumerate(seg.text.split(IMAGE_SLOT)):
            if i:
                pieces.append(None)
            if text:
                pieces.append((text, seg.train))
    texts = [p[0] for p in pieces if p is not None]
    encoded = iter(tok(texts, add_special_tokens=False)["input_ids"] if texts else [])
    input_ids: list[int] = []
    labels: list[int] = []
    for piece in pieces:
        if piece is None:
            ids, train = image_span, False
        else:
            ids, train = next(encoded), piece[1]
        input_ids += ids
        labels += ids if train else [IGNORE_INDEX] * len(ids)
    if sample.task != CHAT_TASK:
        end = end_token_id(tok)
        input_ids.append(end)
        labels.append(end)
    return Encoded(sample.key, sample.task, input_ids, labels, len(sample.images))
