"""The trainer's input: shards -> samples -> tokens -> packed rows -> batches, the same every run.

Each consumer (one per rank and DataLoader worker) reads its own stream: in resampled mode (`epochs: None`, the
default) it draws shards at random with replacement, forever; with `epochs: N` it reads every shard of every
source N times, each epoch in a new seeded order, split across consumers by shard (or by sample when a source has
fewer shards than consumers). Sources mix by weight, a shuffle buffer mixes samples, and first-fit packing fills
rows of `seq_len` tokens, each sample with positions from 0 and attention only inside itself (`block_causal_mask`
for SDPA, `cu_seqlens` for varlen flash attention).

Bad data never stops training; it is counted in `DataStats` and logged: a tar that is truncated or not a tar
(`corrupt_tar`; its samples before the damage are kept), a sample whose json or text does not parse, whose
`<img></img>` slots and images differ, or one of whose images does not decode (that sample's place in its row
becomes padding). A sample longer than `seq_len` is dropped whole (`dropped_too_long`): truncation would cut an
image span or the answer.

The stream depends on (seed, rank, world_size, num_workers). `skip_batches` fast-forwards to a resume position by
reading, tokenizing and packing (not decoding images) the batches before it.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_validator

from vlforge.formats.sample import Sample, SampleError, sample_from_wds
from vlforge.shards.imageio import open_image, to_rgb
from vlforge.shards.listing import shard_urls
from vlforge.shards.reader import iter_tar
from vlforge.training.tokenizer import pad_token_id
from vlforge.training.tokens import IGNORE_INDEX, Encoded, encode_sample

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# open_clip's OPENAI_DATASET_MEAN / _STD: the CLIP normalisation Qwen-VL's ViT was trained with
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
OPEN_ROWS = 8  # rows packing keeps open at once: more fills rows better, fewer keeps samples closer to stream order


class ShardSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str | list[str]  # directory, glob, brace pattern or fsspec URL; a list of those
    weight: float = Field(1.0, gt=0)


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    shards: list[ShardSource] = []
    eval_shards: list[str] = []
    image_size: int = Field(448, gt=0)  # 224 in stage 1, 448 after
    image_tokens: int = Field(256, gt=0)  # adapter queries = <imgpad> positions per image
    seq_len: int = Field(2048, gt=0)
    packing: bool = True  # False: one sample per row, rows padded to the longest in the micro-batch
    micro_batch: int = Field(4, gt=0)  # rows per step per rank
    shuffle_buffer: int = Field(1000, ge=0)
    epochs: int | None = Field(None, gt=0)  # None: resampled, endless
    num_workers: int = Field(0, ge=0)
    seed: int = 0

    @field_validator("shards", mode="before")
    @classmethod
    def _bare_patterns(cls, value: object) -> object:
        """`shards: [DIR, DIR2]` in YAML means weight 1 each."""
        if isinstance(value, list):
            return [{"pattern": v} if isinstance(v, str) else v for v in value]
        return value


@dataclass
class DataStats:
    read: int = 0  # samples read from tars
    used: int = 0  # samples placed in batches
    dropped_too_long: int = 0
    corrupt: Counter = field(default_factory=Counter)  # reason -> count (corrupt_tar, bad_json, bad_image, ...)
    tokens: int = 0  # positions in emitted batches
    padding_tokens: int = 0

    @property
    def padding_share(self) -> float:
        return self.padding_tokens / self.tokens if self.tokens else 0.0

    def __add__(self, other: DataStats) -> DataStats:
        return DataStats(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def as_dict(self) -> dict:
        return {"read": self.read, "used": self.used, "dropped_too_long": self.dropped_too_long,
                "corrupt": sum(self.corrupt.values()), **{f"corrupt_{k}": v for k, v in sorted(self.corrupt.items())},
                "tokens": self.tokens, "padding_tokens": self.padding_tokens,
                "padding_share": round(self.padding_share, 4)}


@dataclass
class Batch:
    input_ids: torch.Tensor  # Long[B, L]
    labels: torch.Tensor  # Long[B, L], IGNORE_INDEX where unsupervised or padding; not shifted
    position_ids: torch.Tensor  # Long[B, L], from 0 in every packed sample
    seq_ids: torch.Tensor  # Long[B, L], 0..k-1 per packed sample of a row, -1 on padding
    images: torch.Tensor  # Float[N, 3, S, S], in order of appearance, row by row
    tasks: list[list[str]]  # task of each packed sample, per row
    keys: list[list[str]]

    def to(self, device: torch.device | str) -> Batch:
        tensors = {name: getattr(self, name).to(device, non_blocking=True)
                   for name in ("input_ids", "labels", "position_ids", "seq_ids", "images")}
        return Batch(**tensors, tasks=self.tasks, keys=self.keys)


def image_transform(size: int) -> Callable[[Image.Image], torch.Tensor]:
    """Qwen-VL's: square bicubic resize (aspect ignored), CLIP mean/std. Takes any PIL image, returns [3,size,size].

    The same arithmetic as torchvision's Resize + ToTensor + Normalize on PIL images (PIL's bicubic resize), in
    numpy: several times faster per image, and no torchvision import."""
    mean = np.array(CLIP_MEAN, dtype=np.float32) * 255
    scale = 1 / (np.array(CLIP_STD, dtype=np.float32) * 255)

    def transform(im: Image.Image) -> torch.Tensor:
        pixels = np.asarray(to_rgb(im).resize((size, size), Image.BICUBIC), dtype=np.float32)
        return torch.from_numpy(((pixels - mean) * scale).transpose(2, 0, 1).copy())

    return transform


def block_causal_mask(seq_ids: torch.Tensor) -> torch.Tensor:
    """Bool[B,1,L,L], True = may attend: causal within the same packed sample; padding attends to itself only."""
    length = seq_ids.shape[1]
    same = seq_ids[:, :, None] == seq_ids[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=seq_ids.device).tril()
    real = (seq_ids >= 0)[:, :, None]
    return ((same & causal & real) | torch.eye(length, dtype=torch.bool, device=seq_ids.device))[:, None]


def cu_seqlens(seq_ids: torch.Tensor) -> torch.Tensor:
    """Int32 boundaries of the packed samples (and padding runs) in the flattened [B*L] batch, for varlen attention."""
    flat = seq_ids.flatten()
    starts = torch.ones_like(flat, dtype=torch.bool)
    starts[1:] = flat[1:] != flat[:-1]
    starts[:: seq_ids.shape[1]] = True
    edges = torch.cat([starts.nonzero().flatten(), torch.tensor([flat.numel()], device=flat.device)])
    return edges.to(torch.int32)


@dataclass
class _Consumer:
    """One reader of the data: rank r's DataLoader worker w is consumer r * workers + w of n."""

    index: int
    count: int
    seed: int

    def rng(self, what: str) -> random.Random:
        return random.Random(f"{self.seed}:{what}:{self.index}")


def tar_samples(url: str, stats: DataStats) -> Iterator[dict]:
    """One tar's sample dicts; a damaged tar ends early, counted once."""
    try:
        for sample in iter_tar(url):
            stats.read += 1
            yield sample
    except Exception as exc:  # noqa: BLE001 - truncated, garbage or unreadable tars: counted, never fatal
        stats.corrupt["corrupt_tar"] += 1
        log.warning("skipping the rest of %s: %s: %s", url, type(exc).__name__, exc)


def _source_stream(urls: list[str], source: int, cfg: DataConfig, me: _Consumer, stats: DataStats) -> Iterator[dict]:
    if cfg.epochs is None:
        rng, tried = me.rng(f"shards{source}"), set()
        while True:
            url = rng.choice(urls)
            got = False
            for sample in tar_samples(url, stats):
                got = True
                yield sample
            tried = set() if got else tried | {url}
            if len(tried) == len(set(urls)):
                raise RuntimeError(f"no readable sample in any of the {len(urls)} shards of {urls[0]}...")
    for epoch in range(cfg.epochs):
        order = list(urls)
        random.Random(f"{cfg.seed}:epoch{epoch}:{source}").shuffle(order)
        if len(order) >= me.count:
            for url in order[me.index:: me.count]:
                yield from tar_samples(url, stats)
        else:  # fewer shards than consumers: every consumer reads them all and keeps its share of samples
            n = 0
            for url in order:
                for sample in tar_samples(url, stats):
                    if n % me.count == me.index:
                        yield sample
                    n += 1


def _mixed(streams: list[Iterator[dict]], weights: list[float], rng: random.Random) -> Iterator[dict]:
    active = list(range(len(streams)))
    while active:
        pick = rng.choices(active, weights=[weights[i] for i in active])[0]
        try:
            yield next(streams[pick])
        except StopIteration:
            active.remove(pick)


def _shuffled(items: Iterator, size: int, rng: random.Random) -> Iterator:
    if size <= 1:
        yield from items
        return
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = item
    rng.shuffle(buffer)
    yield from buffer


@dataclass
class _Item:
    encoded: Encoded
    images: list[bytes]


def encoded_samples(samples: Iterator[dict], tok: PreTrainedTokenizerBase, image_tokens: int,
                    stats: DataStats) -> Iterator[tuple[Encoded, Sample]]:
    """Sample dicts -> (tokens, sample); a sample that cannot be read or tokenized is counted under its reason."""
    for raw in samples:
        try:
            sample = sample_from_wds(raw)
            yield encode_sample(sample, tok, image_tokens), sample
        except SampleError as exc:
            stats.corrupt[exc.reason] += 1
            log.warning("skipping %s", exc)


def _fitting(samples: Iterator[dict], tok: PreTrainedTokenizerBase, cfg: DataConfig,
             stats: DataStats) -> Iterator[_Item]:
    for encoded, sample in encoded_samples(samples, tok, cfg.image_tokens, stats):
        if len(encoded) > cfg.seq_len:
            stats.dropped_too_long += 1
            continue
        yield _Item(encoded, sample.images)


def _rows(items: Iterator[_Item], cfg: DataConfig) -> Iterator[list[_Item]]:
    """First-fit packing into rows of seq_len over OPEN_ROWS open rows (the fullest leaves first when all are open);
    without packing, one item per row."""
    if not cfg.packing:
        for item in items:
            yield [item]
        return
    rows: list[list[_Item]] = []
    used: list[int] = []
    for item in items:
        n = len(item.encoded)
        fit = next((i for i, u in enumerate(used) if u + n <= cfg.seq_len), None)
        if fit is None:
            if len(rows) == OPEN_ROWS:
                full = max(range(len(rows)), key=used.__getitem__)
                yield rows.pop(full)
                used.pop(full)
            rows.append([])
            used.append(0)
            fit = len(rows) - 1
        rows[fit].append(item)
        used[fit] += n
        if used[fit] == cfg.seq_len:
            yield rows.pop(fit)
            used.pop(fit)
    for i in sorted(range(len(rows)), key=lambda i: -used[i]):
        yield rows[i]


def _groups(rows: Iterator[list[_Item]], size: int) -> Iterator[list[list[_Item]]]:
    group = []
    for row in rows:
        group.append(row)
        if len(group) == size:
            yield group
            group = []
    if group:
        yield group


class _Collate:
    """Rows of items -> a Batch; decodes images, and turns a sample whose image fails into padding."""

    def __init__(self, tok: PreTrainedTokenizerBase, cfg: DataConfig) -> None:
        self.cfg = cfg
        self.pad_id = pad_token_id(tok)
        self.transform = image_transform(cfg.image_size)

    def images(self, item: _Item) -> list[torch.Tensor] | None:
        try:
            out = []
            for data in item.images:
                with open_image(data) as im:
                    im.load()
                    out.append(self.transform(im))
            return out
        except Exception as exc:  # noqa: BLE001 - any undecodable image: counted, the sample left out
            log.warning("skipping sample %s: image does not decode (%s: %s)", item.encoded.key, type(exc).__name__, exc)
            return None

    def __call__(self, group: list[list[_Item]], stats: DataStats) -> Batch:
        length = self.cfg.seq_len if self.cfg.packing else max(sum(len(i.encoded) for i in row) for row in group)
        shape = (len(group), length)
        input_ids = torch.full(shape, self.pad_id, dtype=torch.long)
        labels = torch.full(shape, IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros(shape, dtype=torch.long)
        seq_ids = torch.full(shape, -1, dtype=torch.long)
        images: list[torch.Tensor] = []
        tasks: list[list[str]] = []
        keys: list[list[str]] = []
        for r, row in enumerate(group):
            tasks.append([])
            keys.append([])
            start = 0
            for item in row:
                enc, n = item.encoded, len(item.encoded)
                pixels = self.images(item)
                if pixels is None:
                    stats.corrupt["bad_image"] += 1
                else:
                    span = slice(start, start + n)
                    input_ids[r, span] = torch.tensor(enc.input_ids)
                    labels[r, span] = torch.tensor(enc.labels)
                    position_ids[r, span] = torch.arange(n)
                    seq_ids[r, span] = len(tasks[r])
                    tasks[r].append(enc.task)
                    keys[r].append(enc.key)
                    images += pixels
                    stats.used += 1
                start += n
        size = self.cfg.image_size
        stacked = torch.stack(images) if images else torch.zeros(0, 3, size, size)
        stats.tokens += seq_ids.numel()
        stats.padding_tokens += int((seq_ids < 0).sum())
        return Batch(input_ids, labels, position_ids, seq_ids, stacked, tasks, keys)


def _consumer_batches(cfg: DataConfig, urls: list[list[str]], tok: PreTrainedTokenizerBase, me: _Consumer,
                      skip: int, stats: DataStats) -> Iterator[Batch]:
    streams = [_source_stream(tars, i, cfg, me, stats) for i, tars in enumerate(urls)]
    samples = _mixed(streams, [s.weight for s in cfg.shards], me.rng("mix"))
    items = _fitting(_shuffled(samples, cfg.shuffle_buffer, me.rng("shuffle")), tok, cfg, stats)
    collate = _Collate(tok, cfg)
    for n, group in enumerate(_groups(_rows(items, cfg), cfg.micro_batch)):
        if n < skip:
            stats.used += sum(len(row) for row in group)
            continue
        yield collate(group, stats)


def _worker_skip(skip: int, workers: int, role: int) -> int:
    """Batches worker `role` made among the first `skip` (the DataLoader takes one from each worker in turn)."""
    return max(0, -(-(skip - role) // workers))


class _WorkerDataset(torch.utils.data.IterableDataset):
    def __init__(self, cfg: DataConfig, urls: list[list[str]], tok: PreTrainedTokenizerBase, rank: int,
                 world_size: int, skip: int) -> None:
        self.cfg, self.urls, self.tok, self.rank, self.world_size, self.skip = cfg, urls, tok, rank, world_size, skip

    def __iter__(self) -> Iterator[tuple[Batch, int, DataStats]]:
        info = torch.utils.data.get_worker_info()
        workers = self.cfg.num_workers
        # resuming at batch `skip`: the DataLoader asks worker 0 first, so worker w plays role (w + skip) % workers
        role = (info.id + self.skip) % workers
        me = _Consumer(self.rank * workers + role, self.world_size * workers, self.cfg.seed)
        stats = DataStats()
        for batch in _consumer_batches(self.cfg, self.urls, self.tok, me, _worker_skip(self.skip, workers, role),
                                       stats):
            yield batch, info.id, stats


def _keep(item: object) -> object:
    return item


def source_urls(cfg: DataConfig) -> list[list[str]]:
    """The tars of each source of `cfg.shards`, listed once per run: the trainer lists them before loading the
    model, so a pattern that matches nothing fails first; every consumer reads these lists."""
    if not cfg.shards:
        raise ValueError("data.shards: no shards given")
    return [shard_urls(source.pattern) for source in cfg.shards]


class Loader:
    """The batches of one rank, endless (or to the end of `epochs`); `stats` sums every consumer of this rank."""

    def __init__(self, cfg: DataConfig, urls: list[list[str]], tok: PreTrainedTokenizerBase, rank: int,
                 world_size: int, skip_batches: int) -> None:
        if len(urls) != len(cfg.shards):
            raise ValueError(f"{len(urls)} lists of tars for {len(cfg.shards)} sources in data.shards")
        self.stats = DataStats()
        if cfg.num_workers == 0:
            self._iter = _consumer_batches(cfg, urls, tok, _Consumer(rank, world_size, cfg.seed), skip_batches,
                                           self.stats)
        else:
            self._per_worker: dict[int, DataStats] = {}
            loader = torch.utils.data.DataLoader(
                _WorkerDataset(cfg, urls, tok, rank, world_size, skip_batches), batch_size=None, collate_fn=_keep,
                num_workers=cfg.num_workers, persistent_workers=False)
            self._iter = self._from_workers(loader)

    def _from_workers(self, loader: torch.utils.data.DataLoader) -> Iterator[Batch]:
        for batch, worker, stats in loader:
            self._per_worker[worker] = stats
            self.stats = sum(self._per_worker.values(), DataStats())
            yield batch

    def __iter__(self) -> Loader:
        return self

    def __next__(self) -> Batch:
        return next(self._iter)


def build_loader(cfg: DataConfig, tok: PreTrainedTokenizerBase, *, rank: int = 0, world_size: int = 1,
                 skip_batches: int = 0, urls: list[list[str]] | None = None) -> Loader:
    """This rank's batches; see the module docstring for order, splitting, resuming and what is counted.
    `urls`: the tars of each source as `source_urls` listed them; listed here when not given."""
    return Loader(cfg, source_urls(cfg) if urls is None else urls, tok, rank, world_size, skip_batches)
