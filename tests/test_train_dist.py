"""`torchrun --nproc-per-node 2` on CPU (gloo): DDP and FSDP2 steps equal one process on the same global batch,
and `python -m vlforge.training` under torchrun follows the single-process loss curve."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from train_tiny import tiny_setup  # noqa: E402

HERE = Path(__file__).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
pytestmark = pytest.mark.slow


def torchrun(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *args], capture_output=True, text=True, timeout=600, env=ENV, cwd=HERE.parent)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    tiny_setup(root)  # tokenizer and ViT config written once, before the ranks read them
    return root


@pytest.fixture(scope="module")
def one_process(root):
    out = root / "one.pt"
    proc = subprocess.run([sys.executable, str(HERE / "train_dist_worker.py"), str(root), str(out)],
                          capture_output=True, text=True, timeout=600, env=ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.load(out)


@pytest.mark.parametrize("mode", ["ddp", "fsdp"])
def test_two_ranks_take_the_same_steps_as_one_process(root, one_process, mode):
    """Four micro-batches of different lengths: one process accumulates all four, two ranks two each; the losses,
    gradient norms and weights after three AdamW steps agree (DDP all-reduce / FSDP2 reduce-scatter)."""
    out = root / f"{mode}.pt"
    torchrun(str(HERE / "train_dist_worker.py"), str(root), str(out), *(["--fsdp"] if mode == "fsdp" else []))
    two = torch.load(out)
    for (loss1, norm1), (loss2, norm2) in zip(one_process["losses"], two["losses"], strict=True):
        assert loss2 == pytest.approx(loss1, rel=1e-5)
        assert norm2 == pytest.approx(norm1, rel=1e-4)
    assert one_process["losses"][-1][0] < one_process["losses"][0][0]  # it did train
    for key, value in one_process["state"].items():
        torch.testing.assert_close(two["state"][key], value, rtol=1e-4, atol=1e-5)


def identical_shards(root: Path) -> Path:
    """8 copies of one pair: every split of the stream over ranks gives the same rows."""
    from PIL import Image

    from vlforge.shards.writer import ShardWriter

    buf = io.BytesIO()
    Image.new("RGB", (40, 40), (30, 120, 200)).save(buf, "JPEG")
    out = root / "same"
    with ShardWriter(out, "same-00000", max_samples=4) as writer:
        for i in range(8):
            writer.write(f"{i:04d}", {"jpg": buf.getvalue(), "txt": "a blue tile", "json": {"uid": f"s:{i}"}},
                         {"uid": f"s:{i}", "source": "same"})
    return out


def test_torchrun_cli_matches_one_process_with_the_same_global_batch(root, tmp_path):
    import yaml

    shards = identical_shards(tmp_path)
    raw = tiny_setup(root, micro_batch=2, shuffle_buffer=0)
    raw["run"] = {"global_batch": 4, "steps": 4, "log_every": 1}
    raw["optim"] = {"lr": 3e-3, "warmup_steps": 1}
    config = tmp_path / "train.yaml"
    config.write_text(yaml.safe_dump(raw))
    args = ["--stage", "2", "--shards", str(shards), "--config", str(config)]
    single = subprocess.run([sys.executable, "-m", "vlforge.cli", "train", *args, "--out", str(tmp_path / "one")],
                            capture_output=True, text=True, timeout=600, env=ENV)
    assert single.returncode == 0, single.stderr[-3000:]
    assert "1 process(es) x 2 micro-batches" in single.stdout
    proc = torchrun("-m", "vlforge.training", *args, "--out", str(tmp_path / "two"))
    assert "2 process(es) x 1 micro-batches" in proc.stdout

    def losses(run):
        return [json.loads(line)["loss"] for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    assert losses("two") == pytest.approx(losses("one"), rel=1e-5)
    assert losses("one")[-1] < losses("one")[0]
    state = json.loads((tmp_path / "two/ckpt/state.json").read_text())
    assert state["world_size"] == 2 and state["data_position"] == [4, 4]
