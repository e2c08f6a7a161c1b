"""The training loop end to end on CPU with tiny models: overfitting, resume, metrics, checkpoints, evaluation,
`vlforge train` / `vlforge generate` and their bad-input errors."""

import json
import math
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from train_tiny import tiny_setup  # noqa: E402

from vlforge.cli import main as cli  # noqa: E402
from vlforge.training.config import load_config  # noqa: E402
from vlforge.training.generate import generate, load_for_generation  # noqa: E402
from vlforge.training.loop import train  # noqa: E402

BLACK, WHITE = "a black square on nothing", "white snow covers the field"


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and a shared machine is not oversubscribed."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """16 pairs laid out as `vlforge clean` writes them: 8 black images captioned BLACK, 8 white ones WHITE."""
    import io

    from PIL import Image

    from vlforge.shards.writer import ShardWriter

    root = tmp_path_factory.mktemp("pairs")
    out = root / "shards"
    with ShardWriter(out, "pairs-00000", max_samples=8) as writer:
        for i in range(16):
            buf = io.BytesIO()
            Image.new("RGB", (48, 40), (0, 0, 0) if i % 2 == 0 else (255, 255, 255)).save(buf, "JPEG")
            caption = BLACK if i % 2 == 0 else WHITE
            writer.write(f"{i:04d}", {"jpg": buf.getvalue(), "txt": caption, "json": {"uid": f"p:{i}"}},
                         {"uid": f"p:{i}", "source": "pairs"})
    return out


def config(root, shards, *overrides, **data):
    raw = tiny_setup(root, shards=[str(shards)], micro_batch=2, shuffle_buffer=16, **data)
    return load_config(2, values=raw, overrides=["optim.lr=3e-3", "optim.min_lr=3e-4", "optim.warmup_steps=5",
                                               "run.global_batch=2", "run.log_every=100", *overrides])


@pytest.fixture(scope="module")
def overfit_run(tmp_path_factory, shards):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("overfit")
    rows = train(config(root, shards, "run.steps=60"), root / "run", log=lambda line: None)
    return root / "run", rows


def test_tiny_model_overfits_16_samples(overfit_run):
    _, rows = overfit_run
    start = rows[0]["loss"]
    end = sum(r["loss"] for r in rows[-5:]) / 5
    assert end < start / 4, (start, end)


def test_metrics_loss_png_and_checkpoint_are_written(overfit_run):
    run, rows = overfit_run
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 61)) and lines == rows
    assert {"loss", "lr", "grad_norm", "tokens_per_s", "samples_per_s", "padding"} <= set(lines[0])
    # step 1 of 5 warm-up steps; the last step is 54/55 of the way down the cosine from 3e-3 to 3e-4
    assert lines[0]["lr"] == pytest.approx(3e-3 / 5)
    assert lines[-1]["lr"] == pytest.approx(3e-4 + 2.7e-3 * 0.5 * (1 + math.cos(math.pi * 54 / 55)))
    assert 0 <= lines[0]["padding"] < 1
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    state = json.loads((run / "ckpt" / "state.json").read_text())
    assert state["step"] == 60 and state["world_size"] == 1 and state["data_position"] == [60]
    assert {"model.safetensors", "optimizer.pt", "rng-0.pt", "tokenizer", "lm_config.json", "vision.json"} <= \
        {p.name for p in (run / "ckpt").iterdir()}


def test_generate_answers_from_the_image(overfit_run):
    """The overfit model captions a black and a white image differently, batched or one at a time; the KV-cache
    greedy decode equals a naive full-forward argmax loop."""
    from PIL import Image

    run, _ = overfit_run
    model, tok = load_for_generation(run / "ckpt", "cpu")
    black, white = Image.new("RGB", (30, 30)), Image.new("RGB", (30, 30), (255, 255, 255))
    answers = generate(model, tok, [[black], [white]], ["", ""], max_new_tokens=24)
    assert answers == [BLACK, WHITE]
    assert generate(model, tok, [[white]], [""], max_new_tokens=24) == [WHITE]
    clear = Image.new("RGBA", (30, 30), (0, 0, 0, 0))  # as training reads it: composited on white, not black
    assert generate(model, tok, [[clear]], [""], max_new_tokens=24) == [WHITE]

    from types import SimpleNamespace

    from vlforge.training.data import image_transform
    from vlforge.training.generate import prompt_ids

    ids = prompt_ids(tok, "", 1, model.adapter.queries)
    pixels = image_transform(model.image_size)(black)[None]
    with torch.no_grad():
        for _ in range(5):
            batch = SimpleNamespace(input_ids=torch.tensor([ids]), seq_ids=torch.zeros(1, len(ids), dtype=torch.long),
                                    keys=[["b"]], images=pixels)
            logits = model.lm(inputs_embeds=model.embed(batch), use_cache=False).logits
            ids.append(int(logits[0, -1].argmax()))
    naive = tok.decode(ids[-5:])
    assert BLACK.startswith(naive)


def test_resume_continues_the_same_loss_curve(tmp_path, shards):
    whole = train(config(tmp_path / "a", shards, "run.steps=8", "run.ckpt_every=4"), tmp_path / "a" / "run",
                  log=lambda line: None)
    cfg = config(tmp_path / "b", shards, "run.steps=8", "run.ckpt_every=4")
    first = train(cfg, tmp_path / "b" / "run", until=4, log=lambda line: None)
    assert [r["step"] for r in first] == [1, 2, 3, 4]
    resumed = train(cfg, tmp_path / "b" / "run", resume=True, log=lambda line: None)
    assert [r["step"] for r in resumed] == list(range(1, 9))
    for a, b in zip(whole, resumed, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6, abs=1e-7), a["step"]
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-5)
    from safetensors.torch import load_file

    left = load_file(tmp_path / "a/run/ckpt/model.safetensors")
    right = load_file(tmp_path / "b/run/ckpt/model.safetensors")
    for key in left:
        torch.testing.assert_close(left[key], right[key], rtol=1e-6, atol=1e-7)


def test_resume_with_another_world_size_is_refused(overfit_run, tmp_path, shards):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(overfit_run[0], run)
    state = json.loads((run / "ckpt/state.json").read_text())
    (run / "ckpt/state.json").write_text(json.dumps({**state, "world_size": 2}))
    with pytest.raises(ValueError, match="written by 2 processes, this run has 1"):
        train(config(tmp_path, shards, "run.steps=70"), run, resume=True, log=lambda line: None)


def test_evaluation_loss_per_task(tmp_path, shards):
    rows = train(config(tmp_path, shards, "run.steps=2", "run.eval_every=2", "run.eval_batches=2",
                        eval_shards=[str(shards)]), tmp_path / "run", log=lambda line: None)
    evals = [r for r in rows if "eval" in r]
    assert [r["step"] for r in evals] == [2]
    assert set(evals[0]["eval"]) == {"caption_stage1"}
    assert 0 < evals[0]["eval"]["caption_stage1"] < 10


def test_init_from_a_stage_1_checkpoint_at_another_resolution(overfit_run, tmp_path, shards):
    """--init loads every weight; the ViT position table is interpolated from 32 px to 64 px."""
    cfg = config(tmp_path, shards, "run.steps=1", image_size=64)
    rows = train(cfg, tmp_path / "run", init=overfit_run[0] / "ckpt", log=lambda line: None)
    assert rows[0]["loss"] < 2.0  # starts where the overfit run ended, not from scratch (~6.4)


def test_draw_maps_the_grid_back_to_pixels(tmp_path):
    from PIL import Image

    from vlforge.training.generate import draw, shapes

    text = ("<ref>cat</ref><box>(100,200),(500,600)</box> and "
            "<ref>sign</ref><quad>(0,0),(999,0),(999,999),(0,999)</quad>")
    assert shapes(text) == [("cat", "box", [100, 200, 500, 600]), ("sign", "quad", [0, 0, 999, 0, 999, 999, 0, 999])]
    assert draw(Image.new("RGB", (200, 100)), text + "<box>(1,2)</box>", tmp_path / "d.png") == 2  # malformed: skipped
    drawn = Image.open(tmp_path / "d.png")
    assert drawn.getpixel((20, 40))[0] > 200  # box corner (100/1000·200, 200/1000·100) is red
    assert drawn.getpixel((60, 40)) == (0, 0, 0)  # the box (20..100 x 20..60 px) inside is untouched
    assert drawn.getpixel((100, 0))[2] > 200  # the quad's top edge is blue


# ---- the command line ----

def run_cli(capsys, *args):
    code = cli(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_train_then_generate_with_draw(tmp_path, shards, capsys, overfit_run):
    code, out, err = run_cli(capsys, "train", "--stage", "2", "--shards", str(shards), "--out", str(tmp_path / "run"),
                             "--config", str(write_yaml(tmp_path, shards)), "--set", "run.steps=2")
    assert code == 0, err
    assert "step 2/2" in out and (tmp_path / "run/ckpt/model.safetensors").is_file()
    from PIL import Image

    Image.new("RGB", (50, 40)).save(tmp_path / "black.png")
    code, out, err = run_cli(capsys, "generate", "--checkpoint", str(overfit_run[0] / "ckpt"), "--image",
                             str(tmp_path / "black.png"), "--prompt", "", "--max-new-tokens", "24",
                             "--draw", str(tmp_path / "drawn.png"))
    assert code == 0, err
    assert out.splitlines()[0] == BLACK
    assert "drew 0 boxes/quads" in out and (tmp_path / "drawn.png").is_file()


def write_yaml(root, shards):
    import yaml

    raw = tiny_setup(root, shards=[str(shards)], micro_batch=2, shuffle_buffer=4)
    raw["run"] = {"global_batch": 2, "log_every": 1}
    path = root / "train.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_missing_shards(tmp_path, shards, capsys):
    code, _, err = run_cli(capsys, "train", "--stage", "2", "--shards", str(tmp_path / "nothing"), "--out",
                           str(tmp_path / "run"), "--config", str(write_yaml(tmp_path, shards)))
    assert code == 2
    assert err.startswith("vlforge train: error:") and "nothing" in err and "Traceback" not in err


def test_cli_unknown_config_key_is_named(tmp_path, shards, capsys):
    code, _, err = run_cli(capsys, "train", "--stage", "2", "--out", str(tmp_path / "run"), "--config",
                           str(write_yaml(tmp_path, shards)), "--set", "optim.lrr=1")
    assert code == 2 and "optim.lrr: Extra inputs are not permitted" in err
    config = tmp_path / "bad.yaml"
    config.write_text("run:\n  stepz: 3\n")
    code, _, err = run_cli(capsys, "train", "--stage", "1", "--shards", str(shards), "--out", str(tmp_path / "r2"),
                           "--config", str(config))
    assert code == 2 and "run.stepz: Extra inputs are not permitted" in err


def test_cli_checkpoint_of_another_architecture(tmp_path, shards, capsys, overfit_run):
    code, _, err = run_cli(capsys, "train", "--stage", "2", "--shards", str(shards), "--out", str(tmp_path / "run"),
                           "--config", str(write_yaml(tmp_path, shards)), "--init", str(overfit_run[0] / "ckpt"),
                           "--set", "model.lm_config.hidden_size=32")
    assert code == 2
    assert "is from another architecture" in err
    assert "adapter.attn.in_proj_weight (192, 64) vs (96, 32)" in err  # q, k, v rows of LM width 64 vs 32
    code, _, err = run_cli(capsys, "train", "--stage", "2", "--shards", str(shards), "--out", str(tmp_path / "r2"),
                           "--config", str(write_yaml(tmp_path, shards)), "--init", str(tmp_path))
    assert code == 2 and "not a vlforge checkpoint directory" in err


def test_cli_bad_tokenizer_and_existing_run(tmp_path, shards, capsys, overfit_run):
    code, _, err = run_cli(capsys, "train", "--stage", "2", "--shards", str(shards), "--out", str(tmp_path / "run"),
                           "--config", str(write_yaml(tmp_path, shards)), "--set", f"model.tokenizer={tmp_path}")
    assert code == 2 and "not a tokenizer directory" in err
    code, _, err = run_cli(capsys, "train", "--stage", "2", "--shards", str(shards), "--out", str(overfit_run[0]),
                           "--config", str(write_yaml(tmp_path, shards)))
    assert code == 2 and "is not empty" in err
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "config.json").write_text("{}")  # somebody else's file: never overwritten
    code, _, err = run_cli(capsys, "train", "--stage", "2", "--shards", str(shards), "--out", str(tmp_path / "mine"),
                           "--config", str(write_yaml(tmp_path, shards)))
    assert code == 2 and "is not empty" in err and (tmp_path / "mine" / "config.json").read_text() == "{}"


def test_cli_generate_bad_checkpoint_and_image(tmp_path, capsys, overfit_run):
    code, _, err = run_cli(capsys, "generate", "--checkpoint", str(tmp_path), "--prompt", "x")
    assert code == 2 and "not a vlforge checkpoint directory" in err
    code, _, err = run_cli(capsys, "generate", "--checkpoint", str(overfit_run[0] / "ckpt"), "--prompt", "x",
                           "--image", str(tmp_path / "missing.jpg"))
    assert code == 2 and "no such file" in err


def test_python_m_vlforge_training_errors_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "vlforge.training", "--stage", "3", "--out", str(tmp_path / "r"),
                           "--shards", str(tmp_path / "none")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "vlforge train: error:" in proc.stderr and "Traceback" not in proc.stderr


def test_one_epoch_stops_when_the_data_ends_and_keeps_the_checkpoint(tmp_path, shards, capsys):
    """16 pairs of ~20 tokens pack 5 to a 128-token row: about 4 rows, 2 steps of 2 rows, then the stream ends."""
    code, out, err = run_cli(capsys, "train", "--stage", "2", "--shards", str(shards), "--out", str(tmp_path / "run"),
                             "--config", str(write_yaml(tmp_path, shards)), "--epochs", "1", "--set", "run.steps=50")
    assert code == 0, err
    steps = len((tmp_path / "run/metrics.jsonl").read_text().splitlines())
    assert 1 <= steps < 50
    assert f"data exhausted (data.epochs=1) after {steps} steps" in out
    assert json.loads((tmp_path / "run/ckpt/state.json").read_text())["step"] == steps
