"""Export committed SynthDoG shards in Donut's layout: `{split}/metadata.jsonl` plus the images.

Donut's SynthDoG writes `train/`, `validation/` and `test/` (0.8/0.1/0.1), each with images and a
`metadata.jsonl` of `{"file_name", "ground_truth": "{\"gt_parse\": {\"text_sequence\": ...}}"}`.
The split of a sample follows from its key, so re-exporting gives the same files. The export is
built in a temporary directory and renamed into place whole.
"""

from __future__ import annotations

import json
import shutil
import zlib
from pathlib import Path

from vlforge.shards.reader import iter_samples
from vlforge.synthdog.sample import text_sequence

SPLITS = (("train", 0.8), ("validation", 0.1), ("test", 0.1))


def split_of(key: str) -> str:
    position = (zlib.crc32(key.encode("utf-8")) % 10_000) / 10_000
    bound = 0.0
    for name, share in SPLITS:
        bound += share
        if position < bound:
            return name
    return SPLITS[-1][0]


def export_donut(shard_dir: str | Path, out_dir: str | Path) -> dict[str, int]:
    """Write the Donut layout of every sample in shard_dir's tars to out_dir; returns samples per split."""
    shard_dir, out_dir = Path(shard_dir), Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    counts = {name: 0 for name, _ in SPLITS}
    files = {}
    for name, _ in SPLITS:
        (tmp / name).mkdir(parents=True)
        files[name] = open(tmp / name / "metadata.jsonl", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    try:
        for sample in iter_samples(str(shard_dir)):
            record = json.loads(sample["json"])
            key = sample["__key__"]
            split = split_of(key)
            file_name = f"{key}.jpg"
            (tmp / split / file_name).write_bytes(sample["jpg"])
            texts = [line["text"] for line in record["lines"]]
            ground_truth = {"gt_parse": {"text_sequence": text_sequence(texts, record["lang"])}}
            files[split].write(json.dumps({"file_name": file_name,
                                           "ground_truth": json.dumps(ground_truth, ensure_ascii=False)},
                                          ensure_ascii=False) + "\n")
            counts[split] += 1
    finally:
        for f in files.values():
            f.close()
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return counts
