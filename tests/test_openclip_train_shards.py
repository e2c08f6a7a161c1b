"""Users train open_clip on `vlforge clean` shards: open_clip_train's own loader reads them in this environment.

open_clip_train (open_clip_torch[training] 3.3) groups tar members itself and crashes on the empty end-of-shard
dict webdataset >= 0.2.87 yields; pyproject pins webdataset 0.2.86, and this test fails if that pin goes.
"""

import argparse

import open_clip
import torch
from open_clip_train.data import get_wds_dataset
from train_support import write_cleaned

CAPTIONS = [f"a small photo of object number {i}" for i in range(6)]


def test_open_clip_train_loader_reads_cleaned_shards(tmp_path):
    out = write_cleaned(tmp_path / "cleaned", CAPTIONS, shard_samples=2)
    tars = sorted(str(p) for p in out.glob("*.tar"))
    assert len(tars) == 3
    args = argparse.Namespace(
        train_data="::".join(tars), val_data=None, dataset_resampled=False, train_num_samples=len(CAPTIONS),
        train_data_upsampling_factors=None, seed=0, batch_size=3, world_size=1, workers=0)
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    preprocess = open_clip.image_transform(32, is_train=True)
    data = get_wds_dataset(args, preprocess, is_train=True, tokenizer=tokenizer)
    batches = list(data.dataloader)
    assert len(batches) == 2
    texts = set()
    for images, tokens in batches:
        assert images.shape == (3, 3, 32, 32) and images.dtype == torch.float32
        texts |= {tuple(row.tolist()) for row in tokens}
    assert texts == {tuple(tokenizer(c)[0].tolist()) for c in CAPTIONS}
