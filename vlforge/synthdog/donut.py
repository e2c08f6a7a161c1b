"""Export committed SynthDoG shards in Donut's layout: `{split}/metadata.jsonl` plus the images.

Donut's SynthDoG writes `train/`, `validation/` and `test/` (0.8/0.1/0.1), each with images and a
`metadata.jsonl` of `{"file_name", "ground_truth": "{\"gt_parse\": {\"text_sequence\": ...}}"}`, which
Donut reads with `datasets.load_dataset(DIR)`. As there, a split directory exists only when it has
samples (an empty one makes `load_dataset` fail for every split). The split of a sample follows from
its key, so re-exporting gives the same files. The export is built in a temporary directory and
renamed into place whole.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import zlib
from pathlib import Path

from vlforge.shards.reader import iter_samples

SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))
_ASCII_WORD_END = re.compile(r"[\x21-\x7e]$")
_ASCII_WORD_START = re.compile(r"^[\x21-\x7e]")


def split_of(key: str) -> str:
    position = (zlib.crc32(key.encode("utf-8")) % 10_000) / 10_000
    bound = 0.0
    for name, share in SPLITS:
        bound += share
        if position < bound:
            return name
    return SPLITS[-1][0]


def text_sequence(lines: list[str], lang: str) -> str:
    """Lines as one string: spaces between English lines (as Donut's SynthDoG joins them); Chinese
    lines joined directly unless both sides of the join are ASCII words (Donut would insert spaces)."""
    if lang == "en":
        return " ".join(lines)
    out = ""
    for text in lines:
        joint = " " if out and _ASCII_WORD_END.search(out) and _ASCII_WORD_START.match(text) else ""
        out += joint + text
    return out


def export_donut(shard_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write the Donut layout of every sample in shard_dir's tars to out_dir; returns samples per split."""
    shard_dir, out_dir = Path(shard_dir), Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    counts = {name: 0 for name, _ in SPLITS}
    with contextlib.ExitStack() as stack:
        metadata = {}
        for sample in iter_samples(str(shard_dir)):
            record = json.loads(sample["json"])
            key = sample["__key__"]
            split = split_of(key)
            if split not in metadata:
                (tmp / split).mkdir()
                path = tmp / split / "metadata.jsonl"
                metadata[split] = stack.enter_context(open(path, "w", encoding="utf-8"))
            file_name = f"{key}.jpg"
            (tmp / split / file_name).write_bytes(sample["jpg"])
            texts = [line["text"] for line in record["lines"]]
            ground_truth = {"gt_parse": {"text_sequence": text_sequence(texts, record["lang"])}}
            metadata[split].write(json.dumps({"file_name": file_name,
                                              "ground_truth": json.dumps(ground_truth, ensure_ascii=False)},
                                             ensure_ascii=False) + "\n")
            counts[split] += 1
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return counts
