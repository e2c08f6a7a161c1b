"""`vlforge clean` shards feed both open_clip_train's own loader (users train CLIP on them in this environment) and
vlforge's trainer (as stage-1 captions).

open_clip_train (open_clip_torch[training] 3.3) groups tar members itself and crashes on the empty end-of-shard
dict webdataset >= 0.2.87 yields; pyproject pins webdataset 0.2.86, and the first test fails if that pin goes.
"""

import argparse

import open_clip
import pytest
import torch
from open_clip_train.data import get_wds_dataset
from test_clean_pipeline import distinct_jpegs
from test_clean_support import ImageServer, write_laion, write_recipe
from train_support import qwen

from vlforge.pipelines.clean.recipe import load_recipe
from vlforge.pipelines.clean.run import clean
from vlforge.training.data import DataConfig, build_loader

pytestmark = pytest.mark.slow  # a real `vlforge clean` run on Ray
CAPTIONS = [f"A clear photograph of galaxy number {i} taken through a large telescope" for i in range(6)]


@pytest.fixture(scope="module")
def cleaned(ray_local, tmp_path_factory):
    """`vlforge clean` itself over a LAION-schema dump served from 127.0.0.1: six pairs kept, two per tar."""
    tmp = tmp_path_factory.mktemp("clean")
    with ImageServer() as server:
        rows = [{"SAMPLE_ID": i, "URL": server.add(f"/{i}.jpg", data), "TEXT": CAPTIONS[i], "WIDTH": 160,
                 "HEIGHT": 160, "similarity": 0.35} for i, data in enumerate(distinct_jpegs(len(CAPTIONS)))]
        dump = write_laion(tmp / "laion.parquet", rows)
        recipe = load_recipe(write_recipe(tmp / "recipe.yaml", shards={"max_samples": 2}))
        clean(recipe, tmp / "out", [("web", str(dump))])
    return tmp / "out"


def test_open_clip_train_loader_reads_cleaned_shards(cleaned):
    tars = sorted(str(p) for p in cleaned.glob("*.tar"))
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


def test_trainer_reads_cleaned_shards_as_stage1_captions(cleaned):
    tok = qwen()
    cfg = DataConfig(shards=[str(cleaned)], image_size=32, image_tokens=4, seq_len=256, micro_batch=8, epochs=1)
    loader = build_loader(cfg, tok)
    (batch,) = list(loader)
    assert batch.tasks == [["caption_stage1"] * len(CAPTIONS)] and batch.images.shape == (len(CAPTIONS), 3, 32, 32)
    supervised = {tok.decode(batch.input_ids[0][(batch.seq_ids[0] == k) & (batch.labels[0] != -100)])
                  for k in range(len(CAPTIONS))}
    assert supervised == {c + "<|endoftext|>" for c in CAPTIONS}
    assert loader.stats.used == len(CAPTIONS) and not loader.stats.corrupt
