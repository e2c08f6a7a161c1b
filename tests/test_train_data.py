"""The trainer's loader on real shards of all three kinds: packing, masks, images, bad data, order and resuming."""

import io
import itertools
import random
import tarfile
from collections import Counter

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from pydantic import ValidationError
from test_synthdog_support import generate_here
from torchvision import transforms
from train_support import EXAMPLES, jpeg, qwen, render_here, write_cleaned

from vlforge.formats.sample import sample_from_wds
from vlforge.shards.listing import shard_urls
from vlforge.shards.reader import iter_samples
from vlforge.shards.writer import ShardWriter
from vlforge.synthdog.config import load_config as synthdog_config
from vlforge.training.data import (
    CLIP_MEAN,
    CLIP_STD,
    DataConfig,
    block_causal_mask,
    build_loader,
    cu_seqlens,
    image_transform,
)
from vlforge.training.tokens import IGNORE_INDEX, encode_sample

N = 4  # image positions per image
SIZE = 32  # image side
CAPTIONS = [f"a photo of thing number {i} on a table" for i in range(7)]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    """Rendered task shards (every bundled example), synthdog OCR shards and cleaned pairs."""
    tmp = tmp_path_factory.mktemp("shards")
    for jsonl in sorted(EXAMPLES.glob("*.jsonl")):
        render_here(jsonl, tmp / "rendered" / jsonl.stem)
    generate_here(tmp / "synthdog", ["en"], 2, 2, 7, synthdog_config({}))
    write_cleaned(tmp / "cleaned", CAPTIONS, shard_samples=2)
    return {"rendered": str(tmp / "rendered" / "*" / "*.tar"), "synthdog": str(tmp / "synthdog"),
            "cleaned": str(tmp / "cleaned")}


def reference(*patterns):
    """key -> (Encoded, image bytes), read sample by sample outside the loader."""
    out = {}
    for url in shard_urls(list(patterns)):
        for raw in iter_samples(url):
            sample = sample_from_wds(raw)
            out[sample.key] = (encode_sample(sample, qwen(), N), sample.images)
    return out


def config(dirs, **kw):
    base = {"shards": list(dirs.values()), "image_size": SIZE, "image_tokens": N, "seq_len": 2048,
            "micro_batch": 2, "shuffle_buffer": 4, "epochs": 1}
    return DataConfig.model_validate({**base, **kw})


def samples_of(batch):
    """(key, task, ids, labels, positions) of every packed sample, row by row."""
    for r, keys in enumerate(batch.keys):
        for k, key in enumerate(keys):
            here = batch.seq_ids[r] == k
            yield key, batch.tasks[r][k], batch.input_ids[r][here].tolist(), batch.labels[r][here].tolist(), \
                batch.position_ids[r][here].tolist()


def test_one_epoch_packs_every_sample_once_with_its_own_tokens_positions_and_images(dirs):
    ref = reference(*dirs.values())
    loader = build_loader(config(dirs), qwen())
    batches = list(loader)
    seen = []
    transform = image_transform(SIZE)
    for batch in batches:
        assert batch.input_ids.shape == (batch.input_ids.shape[0], 2048) and batch.input_ids.shape[0] <= 2
        wanted_images = []
        for key, task, ids, labels, positions in samples_of(batch):
            enc, images = ref[key]
            assert (task, ids, labels, positions) == (enc.task, enc.input_ids, enc.labels, list(range(len(ids))))
            wanted_images += [transform(Image.open(io.BytesIO(data))) for data in images]
            seen.append(key)
        pad = batch.seq_ids < 0
        assert (batch.labels[pad] == IGNORE_INDEX).all() and (batch.position_ids[pad] == 0).all()
        assert len(wanted_images) == batch.images.shape[0]
        if wanted_images:
            assert torch.equal(torch.stack(wanted_images), batch.images)
        # a sample's tokens are contiguous: seq ids never go back
        for row in batch.seq_ids:
            real = row[row >= 0]
            assert (real[1:] >= real[:-1]).all()
    assert sorted(seen) == sorted(ref)
    assert {t for t in (ref[k][0].task for k in seen)} >= {"caption_stage1", "chat", "ocr", "vqa", "text"}
    stats = loader.stats
    assert stats.read == stats.used == len(ref) and not stats.corrupt and stats.dropped_too_long == 0
    assert stats.tokens == sum(b.input_ids.numel() for b in batches)
    assert stats.padding_tokens == sum(int((b.seq_ids < 0).sum()) for b in batches)


def test_packing_fills_rows_padding_does_not(dirs):
    packed = build_loader(config(dirs, seq_len=2048, micro_batch=4), qwen())
    padded = build_loader(config(dirs, seq_len=2048, micro_batch=4, packing=False), qwen())
    rows_packed = sum(b.input_ids.shape[0] for b in packed)
    rows_padded = [b for b in padded]
    assert sum(b.input_ids.shape[0] for b in rows_padded) == padded.stats.used == packed.stats.used
    assert rows_packed < padded.stats.used
    # without packing every row holds one sample and rows are as long as the micro-batch's longest sample
    for b in rows_padded:
        assert all(len(keys) == 1 for keys in b.keys)
        assert b.input_ids.shape[1] == max(int((row >= 0).sum()) for row in b.seq_ids)
    assert packed.stats.padding_share < padded.stats.padding_share


def test_samples_longer_than_a_row_are_dropped_whole_and_counted(dirs):
    ref = reference(dirs["cleaned"], dirs["rendered"])
    limit = 40
    fitting = sorted(k for k, (enc, _) in ref.items() if len(enc) <= limit)
    assert 0 < len(fitting) < len(ref)
    cfg = config({"a": dirs["cleaned"], "b": dirs["rendered"]}, seq_len=limit)
    loader = build_loader(cfg, qwen())
    got = sorted(key for batch in loader for key, *_ in samples_of(batch))
    assert got == fitting
    assert loader.stats.dropped_too_long == len(ref) - len(fitting)


def _write(out, prefix, samples):
    with ShardWriter(out, prefix) as writer:
        for key, files in samples:
            writer.write(key, files)
    return sorted(out.glob(f"{prefix}-*.tar"))[0]


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    """good tar, truncated tar, garbage bytes named .tar, and a tar of good and bad samples."""
    out = tmp_path_factory.mktemp("damaged")
    write_cleaned(out, CAPTIONS[:3], prefix="good")
    whole = next(write_cleaned(out / "whole", CAPTIONS[:4], prefix="cut").glob("*.tar"))
    with tarfile.open(whole) as t:
        third = [m for m in t.getmembers() if m.name.startswith("0000_0000000002.")]
    data = whole.read_bytes()
    # cut inside the third sample's last member: the first two come through, the third is lost with the tar
    (out / "cut-000000.tar").write_bytes(data[: third[-1].offset_data + third[-1].size // 2])
    (out / "garbage-000000.tar").write_bytes(random.Random(0).randbytes(5000))
    two_slots = {"task": "caption", "source": "x", "segments": [
        {"text": "<img></img><img></img>", "train": False}, {"text": "two", "train": True}]}
    _write(out, "mixed", [
        ("ok1", {"jpg": jpeg((1, 2, 3)), "txt": "a fine caption"}),
        ("badjson", {"jpg": jpeg((1, 2, 3)), "txt": "fine", "json": b"{not json"}),
        ("badimage", {"jpg": b"\xff\xd8\xff\xe0 not really a jpeg", "txt": "an image that does not decode"}),
        ("mismatch", {"0.jpg": jpeg((1, 2, 3)), "json": two_slots}),
        ("notext", {"jpg": jpeg((1, 2, 3))}),
        ("control", {"jpg": jpeg((1, 2, 3)), "txt": "sneaky<|endoftext|>caption"}),
        ("strayimg", {"0.jpg": jpeg((1, 2, 3)), "json": {**two_slots, "segments": [
            {"text": "<img></img>", "train": False}, {"text": "<imgpad>", "train": True}]}}),
        ("ok2", {"jpg": jpeg((9, 9, 9)), "txt": "another fine caption"}),
    ])
    return out


def test_damaged_tars_and_samples_are_skipped_and_counted(damaged, caplog):
    cfg = DataConfig(shards=[str(damaged / "*.tar")], image_size=SIZE, image_tokens=N, seq_len=512, micro_batch=3,
                     epochs=1, shuffle_buffer=0)
    loader = build_loader(cfg, qwen())
    keys = sorted(key for batch in loader for key, *_ in samples_of(batch))
    assert keys == sorted(["0000_0000000000"] * 2 + ["0000_0000000001"] * 2 + ["0000_0000000002", "ok1", "ok2"])
    assert loader.stats.corrupt == Counter(corrupt_tar=2, bad_json=1, bad_image=1, image_count=1, no_text=1,
                                           bad_text=1, bad_segments=1)
    assert loader.stats.read == 3 + 2 + 8 and loader.stats.used == 7
    assert "garbage-000000.tar" in caplog.text and "cut-000000.tar" in caplog.text


def test_an_undecodable_image_leaves_padding_where_its_sample_was(damaged):
    cfg = DataConfig(shards=[str(damaged / "mixed-000000.tar")], image_size=SIZE, image_tokens=N, seq_len=512,
                     micro_batch=1, epochs=1, shuffle_buffer=0)
    (batch,) = list(build_loader(cfg, qwen()))
    assert batch.keys == [["ok1", "ok2"]]
    runs = [value for value, _ in itertools.groupby(batch.seq_ids[0].tolist())]
    assert runs == [0, -1, 1, -1]  # ok1, the bad-image sample's span as padding, ok2, the row's end
    assert batch.images.shape == (2, 3, SIZE, SIZE)


def test_same_seed_same_batches_other_seed_other_order(dirs):
    def first_keys(seed, n=4):
        loader = build_loader(config(dirs, seed=seed, epochs=None), qwen())
        return [batch.keys for batch in itertools.islice(loader, n)]

    assert first_keys(0) == first_keys(0)
    assert first_keys(0) != first_keys(1)


def test_loader_reads_the_tars_listed_once_for_it(dirs, tmp_path):
    """The trainer lists each source's tars once and hands the lists over; the loader does not list again."""
    cfg = config({"c": str(tmp_path / "moved-*.tar")}, seq_len=64, micro_batch=1)
    keys = {k for batch in build_loader(cfg, qwen(), urls=[shard_urls(dirs["cleaned"])]) for k, *_ in samples_of(batch)}
    assert keys == {f"0000_{i:010d}" for i in range(len(CAPTIONS))}
    with pytest.raises(ValueError, match="2 lists of tars for 1 sources"):
        build_loader(cfg, qwen(), urls=[[], []])


def test_resampled_stream_is_endless(dirs):
    cfg = config({"c": dirs["cleaned"]}, epochs=None, seq_len=64, micro_batch=1)
    loader = build_loader(cfg, qwen())
    keys = [k for batch in itertools.islice(loader, 40) for k, *_ in samples_of(batch)]
    assert len(keys) > len(CAPTIONS) * 2
    assert set(keys) == {f"0000_{i:010d}" for i in range(len(CAPTIONS))}


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_batches_resumes_exactly_where_the_stream_was(dirs, workers):
    cfg = config(dirs, epochs=None, num_workers=workers, seq_len=512, micro_batch=1)
    whole = [b.keys for b in itertools.islice(build_loader(cfg, qwen()), 7)]
    resumed = [b.keys for b in itertools.islice(build_loader(cfg, qwen(), skip_batches=3), 4)]
    assert resumed == whole[3:]


@pytest.mark.parametrize("source", ["cleaned", "rendered"], ids=["shard-split", "sample-split"])
def test_ranks_split_an_epoch_without_overlap(dirs, source):
    """4 cleaned tars for 2 ranks are split by tar; the 9 rendered tars for 10 ranks are split by sample."""
    world = 2 if source == "cleaned" else 10
    ref = reference(dirs[source])
    cfg = config({"s": dirs[source]})
    parts = [sorted(k for b in build_loader(cfg, qwen(), rank=r, world_size=world) for k, *_ in samples_of(b))
             for r in range(world)]
    assert sorted(itertools.chain.from_iterable(parts)) == sorted(ref)
    assert sum(1 for p in parts if p) >= 2


def test_sources_mix_by_weight(dirs):
    cfg = DataConfig(shards=[{"pattern": dirs["cleaned"], "weight": 3.0}, {"pattern": dirs["synthdog"], "weight": 1}],
                     image_size=SIZE, image_tokens=N, seq_len=2048, micro_batch=1, shuffle_buffer=0, packing=False)
    tasks = [t for batch in itertools.islice(build_loader(cfg, qwen()), 400) for t in batch.tasks[0]]
    share = tasks.count("caption_stage1") / len(tasks)
    assert 0.7 < share < 0.8


def test_image_transform_is_square_bicubic_with_clip_normalisation():
    assert (CLIP_MEAN, CLIP_STD) == (open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD)
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8))
    got = image_transform(16)(im)
    resized = np.asarray(im.resize((16, 16), Image.BICUBIC), dtype=np.float32) / 255
    wanted = (resized - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    assert got.shape == (3, 16, 16)
    assert np.allclose(got.numpy(), wanted.transpose(2, 0, 1), atol=1e-5)
    qwen_vl = transforms.Compose([  # Qwen-VL's own image transform (visual.py)
        transforms.Resize((16, 16), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(), transforms.Normalize(CLIP_MEAN, CLIP_STD)])
    assert torch.allclose(got, qwen_vl(im), atol=1e-5)
    grey = image_transform(8)(Image.new("L", (5, 9), 255))  # any mode becomes RGB
    assert torch.allclose(grey[:, 0, 0], (1 - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD))


def test_block_causal_mask_and_cu_seqlens():
    seq_ids = torch.tensor([[0, 0, 1, 1, 1, -1], [0, 0, 0, 0, -1, -1]])
    t, f = True, False
    assert block_causal_mask(seq_ids)[0, 0].tolist() == [
        [t, f, f, f, f, f],
        [t, t, f, f, f, f],
        [f, f, t, f, f, f],
        [f, f, t, t, f, f],
        [f, f, t, t, t, f],
        [f, f, f, f, f, t],
    ]
    assert block_causal_mask(seq_ids).shape == (2, 1, 6, 6)
    second = block_causal_mask(seq_ids)[1, 0]
    assert second[5].tolist() == [f, f, f, f, f, t] and second[3].tolist() == [t, t, t, t, f, f]
    assert cu_seqlens(seq_ids).tolist() == [0, 2, 5, 6, 10, 12]
    assert cu_seqlens(seq_ids).dtype == torch.int32


def test_config_refuses_unknown_keys_and_takes_bare_patterns(tmp_path):
    with pytest.raises(ValidationError, match="shufle_buffer"):
        DataConfig.model_validate({"shards": ["x"], "shufle_buffer": 3})
    assert DataConfig.model_validate({"shards": ["a", {"pattern": "b", "weight": 2}]}).shards[0].weight == 1.0
    with pytest.raises(FileNotFoundError, match="no shards"):
        build_loader(DataConfig(shards=[str(tmp_path / "*.tar")]), qwen())
    with pytest.raises(ValueError, match=r"data\.shards"):
        build_loader(DataConfig(), qwen())
