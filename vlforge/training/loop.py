"""The trainer, readable top to bottom: one process, or one of N under torchrun (DDP, or FSDP2 with run.fsdp).

Each optimizer step draws `global_batch / (micro_batch · world)` micro-batches per rank, sums the per-token loss
and divides by the supervised tokens of the whole global batch (all ranks, all micro-batches), so N processes
take exactly the step one process takes on the same rows. bf16 autocast on GPU, fp32 on CPU.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm import tqdm

from vlforge.training import checkpoint
from vlforge.training.config import TrainConfig
from vlforge.training.data import DataConfig
from vlforge.training.model import VLModel, targets
from vlforge.training.optim import build_optimizer
from vlforge.training.schedule import lr_at
from vlforge.training.tokens import IGNORE_INDEX


@dataclass
class Dist:
    rank: int
    world: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> Dist:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return Dist(dist.get_rank() if world > 1 else 0, world, device)


def all_sum(value: float, d: Dist) -> float:
    if d.world == 1:
        return float(value)
    t = torch.tensor(float(value), dtype=torch.float64, device=d.device)
    dist.all_reduce(t)
    return float(t)


def build_model(cfg: TrainConfig, tok, init: Path | None) -> VLModel:
    model = VLModel(cfg.model, tok, cfg.data.image_size, cfg.data.image_tokens)
    if init is not None:
        checkpoint.load_model_weights(model, init)
    model.set_trainable(cfg.model.train_vision, cfg.model.train_adapter, cfg.model.train_lm)
    return model


def wrap(model: VLModel, cfg: TrainConfig, d: Dist) -> nn.Module:
    """DDP across ranks by default; with run.fsdp, FSDP2 `fully_shard` per ViT block, per LM layer, the rest of
    the ViT and the adapter each, then the root (the LM's embeddings, final norm and head: tied weights stay in
    one group, used across the whole forward). Frozen and trainable parts never share a group."""
    if cfg.run.fsdp:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) \
            if d.device.type == "cuda" else MixedPrecisionPolicy()
        for block in [*model.vision.blocks, *model.lm.model.layers]:
            fully_shard(block, mp_policy=mp)
        for part in (model.vision, model.adapter):
            fully_shard(part, mp_policy=mp)
        return fully_shard(model, mp_policy=mp)
    if d.world == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[d.device.index] if d.device.type == "cuda" else None)


def no_sync(wrapped: nn.Module, last: bool):
    """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP2) on all but the last micro-batch of a step."""
    if hasattr(wrapped, "set_requires_gradient_sync"):
        wrapped.set_requires_gradient_sync(last)
    elif hasattr(wrapped, "no_sync") and not last:
        return wrapped.no_sync()
    return nullcontext()


def autocast(d: Dist):
    return torch.autocast("cuda", dtype=torch.bfloat16) if d.device.type == "cuda" else nullcontext()


def step_flops(model: VLModel, cfg: TrainConfig, tokens: int, images: int) -> float:
    """Model FLOPs of one step as torchtitan counts them: per token, 6·N for trained parameters and 2·N for frozen
    ones (forward only), plus attention 12·layers·width·context (4· when frozen); for the LM, the ViT (per patch)
    and the adapter (per query)."""
    def part(module: nn.Module, n: int, items: int, layers: int, width: int, context: int) -> float:
        trained = any(p.requires_grad for p in module.parameters())
        return items * ((6 if trained else 2) * n + (12 if trained else 4) * layers * width * context)

    def count(module: nn.Module) -> int:
        return sum(p.numel() for p in module.parameters())

    lm, vision, adapter = model.lm, model.vision, model.adapter
    # parameters() counts a tied embedding/head once, as the head (a matmul); an untied lookup table is no compute
    lm_n = count(lm)
    if lm.get_output_embeddings().weight is not lm.get_input_embeddings().weight:
        lm_n -= lm.get_input_embeddings().weight.numel()
    return (part(lm, lm_n, tokens, lm.config.num_hidden_layers, lm.config.hidden_size, cfg.data.seq_len)
            + part(vision, count(vision), images * vision.patches, len(vision.blocks), vision.width, vision.patches)
            + part(adapter, count(adapter), images * adapter.queries, 1, adapter.query.shape[1], vision.patches))


def train_step(forward, wrapped: nn.Module, params: list[nn.Parameter], optimizer: torch.optim.Optimizer,
               micro: list, d: Dist, grad_clip: float) -> tuple[float, float]:
    """One optimizer step over this rank's micro-batches; returns (global mean token loss, gradient norm).

    Each micro-batch's summed token loss is divided by the supervised tokens of the whole global batch, so the
    gradients summed over micro-batches and ranks are those of the global mean, however the rows are split.
    """
    supervised = all_sum(sum(int((targets(b.labels, b.seq_ids) != IGNORE_INDEX).sum()) for b in micro), d)
    loss_sum = 0.0
    for i, batch in enumerate(micro):
        with no_sync(wrapped, i == len(micro) - 1), autocast(d):
            loss = forward(batch).token_loss.sum() / max(supervised, 1.0)
        (loss * d.world).backward()  # DDP and FSDP average gradients over ranks: undo the 1/world
        loss_sum += float(loss.detach())
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
    return all_sum(loss_sum, d), float(grad_norm)


class Metrics:
    """metrics.jsonl (rank 0), one line per step or evaluation; a resumed run drops lines after its checkpoint."""

    def __init__(self, run_dir: Path, d: Dist, start_step: int) -> None:
        self.path, self.main = run_dir / "metrics.jsonl", d.main
        self.rows: list[dict] = []
        if self.main and self.path.exists():
            self.rows = [r for r in map(json.loads, self.path.read_text().splitlines()) if r["step"] <= start_step]
            self.path.write_text("".join(json.dumps(r) + "\n" for r in self.rows))

    def write(self, row: dict) -> None:
        if self.main:
            self.rows.append(row)
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")


def plot(rows: list[dict], path: Path) -> None:
    """loss.png: training loss (and evaluation loss per task) and the LR against the step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train = [r for r in rows if "loss" in r]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    top.plot([r["step"] for r in train], [r["loss"] for r in train], label="train")
    for task in sorted({t for r in rows for t in r.get("eval", {})}):
        points = [(r["step"], r["eval"][task]) for r in rows if task in r.get("eval", {})]
        top.plot(*zip(*points, strict=True), marker="o", label=f"eval {task}")
    top.set_ylabel("loss")
    top.legend()
    bottom.plot([r["step"] for r in train], [r["lr"] for r in train])
    bottom.set_ylabel("learning rate")
    bottom.set_xlabel("step")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def eval_data(cfg: TrainConfig) -> DataConfig:
    """The data config of the held-out shards: `data.eval_shards`, read once per evaluation."""
    return type(cfg.data).model_validate({**cfg.data.model_dump(), "shards": cfg.data.eval_shards, "epochs": 1})


def evaluate(model: nn.Module, cfg: TrainConfig, eval_cfg: DataConfig, tok, d: Dist,
             urls: list[list[str]]) -> dict[str, float]:
    """Mean next-token loss per task over `run.eval_batches` batches of the held-out shards (`eval_cfg` from
    `eval_data`; `urls`: the tars of each of its sources)."""
    from vlforge.training.data import build_loader

    sums: dict[str, list[float]] = {}
    model.eval()
    with torch.no_grad():
        for i, batch in enumerate(build_loader(eval_cfg, tok, rank=d.rank, world_size=d.world, urls=urls)):
            if i >= cfg.run.eval_batches:
                break
            batch = batch.to(d.device)
            with autocast(d):
                out = model(batch)
            for row, tasks in enumerate(batch.tasks):
                for sid, task in enumerate(tasks):
                    here = (batch.seq_ids[row] == sid) & out.supervised[row]
                    acc = sums.setdefault(task, [0.0, 0.0])
                    acc[0] += float(out.token_loss[row][here].sum())
                    acc[1] += float(here.sum())
    model.train()
    gathered = [sums]
    if d.world > 1:
        gathered = [None] * d.world
        dist.all_gather_object(gathered, sums)
    total: dict[str, list[float]] = {}
    for part in gathered:
        for task, (loss, count) in part.items():
            acc = total.setdefault(task, [0.0, 0.0])
            acc[0] += loss
            acc[1] += count
    return {task: loss / count for task, (loss, count) in sorted(total.items()) if count}


def train(cfg: TrainConfig, run_dir: Path, *, init: Path | None = None, resume: bool = False,
          until: int | None = None, log=print) -> list[dict]:
    """Train to `cfg.run.steps` optimizer steps into RUN_DIR (or stop after step `until`, checkpointed, for a
    time-sliced job to --resume); returns the metric rows."""
    from vlforge.training.data import build_loader, source_urls
    from vlforge.training.tokenizer import load_tokenizer

    # the tars, listed once and before any model loads: a pattern that matches nothing fails first
    urls = source_urls(cfg.data)
    eval_cfg = eval_data(cfg) if cfg.data.eval_shards else None
    eval_urls = source_urls(eval_cfg) if eval_cfg else []
    d = init_distributed()
    accum, rest = divmod(cfg.run.global_batch, cfg.data.micro_batch * d.world)
    if rest or not accum:
        raise ValueError(f"run.global_batch={cfg.run.global_batch} is not a multiple of data.micro_batch "
                         f"({cfg.data.micro_batch}) x processes ({d.world})")
    ckpt = run_dir / "ckpt"
    if resume and not (ckpt / "state.json").is_file():
        raise ValueError(f"--resume: no checkpoint in {run_dir}")
    if not resume and run_dir.is_dir() and any(run_dir.iterdir()):  # never overwrite files vlforge did not write
        raise ValueError(f"--out {run_dir} is not empty: pick a new directory, or continue its run with --resume")
    run_dir.mkdir(parents=True, exist_ok=True)

    torch.manual_seed(cfg.run.seed)
    tok = load_tokenizer(cfg.model.tokenizer or cfg.model.lm)
    model = build_model(cfg, tok, init).to(d.device)
    wrapped = wrap(model, cfg, d)
    optimizer = build_optimizer(model, cfg.optim)
    start = 0
    if resume:
        start = checkpoint.resume(ckpt, model, optimizer, world_size=d.world, rank=d.rank)["step"]
    forward = torch.compile(wrapped) if cfg.model.compile else wrapped
    loader = build_loader(cfg.data, tok, rank=d.rank, world_size=d.world, skip_batches=start * accum, urls=urls)
    metrics = Metrics(run_dir, d, start)
    params = [p for p in model.parameters() if p.requires_grad]
    config = cfg.model_dump(mode="json")
    if d.main:
        (run_dir / "config.json").write_text(json.dumps(config, indent=1))
        trained = sum(p.numel() for p in params)
        log(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, {trained / 1e6:.1f}M "
            f"trained; {d.world} process(es) x {accum} micro-batches of {cfg.data.micro_batch} x "
            f"{cfg.data.seq_len} tokens; attention: {cfg.model.attn_implementation}; device {d.device}")

    wrapped.train()
    last = cfg.run.steps if until is None else min(until, cfg.run.steps)
    bar = tqdm(total=last, initial=start, unit="step", desc="train", leave=False,
               disable=not (d.main and sys.stderr.isatty()))  # a live bar on a terminal; logs stay line by line
    for step in range(start, last):
        began = time.perf_counter()
        lr = lr_at(step, cfg.optim.lr, cfg.optim.min_lr, cfg.optim.warmup_steps, cfg.run.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_scale"]
        micro = [b.to(d.device) for b in itertools.islice(loader, accum)]
        if len(micro) < accum:
            if d.main:
                log(f"data exhausted (data.epochs={cfg.data.epochs}) after {step} steps")
            break
        loss, grad_norm = train_step(forward, wrapped, params, optimizer, micro, d, cfg.optim.grad_clip)

        real = all_sum(sum(int((b.seq_ids >= 0).sum()) for b in micro), d)
        slots = all_sum(sum(b.seq_ids.numel() for b in micro), d)
        samples = all_sum(sum(len(k) for b in micro for k in b.keys), d)
        images = all_sum(sum(b.images.shape[0] for b in micro), d)
        seconds = time.perf_counter() - began
        row = {"step": step + 1, "loss": loss, "lr": lr, "grad_norm": grad_norm,
               "tokens_per_s": real / seconds, "samples_per_s": samples / seconds, "padding": 1 - real / slots,
               "seconds": seconds}
        if d.device.type == "cuda":
            row["mfu"] = step_flops(model, cfg, int(slots), int(images)) / seconds / (cfg.run.peak_tflops * 1e12
                                                                                      * d.world)
            row["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
        if not math.isfinite(row["loss"]):
            raise RuntimeError(f"loss is {row['loss']} at step {step + 1}")
        metrics.write(row)
        bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{row['tokens_per_s']:.0f}", refresh=False)
        bar.update()
        if d.main and ((step + 1) % cfg.run.log_every == 0 or step + 1 == cfg.run.steps):
            log(f"step {step + 1}/{cfg.run.steps}  loss {row['loss']:.4f}  lr {lr:.2e}  grad {row['grad_norm']:.2f}"
                f"  {row['tokens_per_s']:.0f} tok/s  padding {row['padding']:.0%}"
                + (f"  mfu {row['mfu']:.1%}" if "mfu" in row else ""))
        if cfg.run.eval_every and cfg.data.eval_shards and (step + 1) % cfg.run.eval_every == 0:
            losses = evaluate(forward, cfg, eval_cfg, tok, d, eval_urls)
            metrics.write({"step": step + 1, "eval": losses})
            if d.main:
                log("eval  " + "  ".join(f"{task} {loss:.4f}" for task, loss in losses.items()))
        if (step + 1) % cfg.run.ckpt_every == 0 or step + 1 == last:
            checkpoint.save(run_dir, model, optimizer, tok, step=step + 1, world_size=d.world, rank=d.rank,
                            data_position=(step + 1) * accum, config=config)
    else:
        step = last
    bar.close()
    if start < step < last:  # the data ran out: keep what was trained
        checkpoint.save(run_dir, model, optimizer, tok, step=step, world_size=d.world, rank=d.rank,
                        data_position=step * accum, config=config)
    if d.main:
        plot(metrics.rows, run_dir / "loss.png")
        log(f"done: {ckpt}, {run_dir / 'metrics.jsonl'}, {run_dir / 'loss.png'}; data {loader.stats.as_dict()}")
    return metrics.rows
