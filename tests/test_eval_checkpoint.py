"""`vlforge eval` end to end: shards from `vlforge render`, a tiny model trained on them by the bundled trainer
until it has memorised them, then greedy generation and scoring. A memorised set must score 100, which holds
only if the prompt ends exactly where training split prompt from answer (grounding: right after `<box>`)."""

import json
import shutil
from pathlib import Path

import duckdb
import pytest

torch = pytest.importorskip("torch")

from train_tiny import tiny_setup  # noqa: E402

import vlforge.training.generate as generation  # noqa: E402
from vlforge.cli import main  # noqa: E402
from vlforge.pipelines.render import RenderOptions, run_render  # noqa: E402
from vlforge.training.config import load_config  # noqa: E402
from vlforge.training.loop import train  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "tasks"
# one-word answers with different first tokens: 80 steps of a 2-layer model learn them for sure
QUESTIONS = [("coffee", "What color is the saucer?", "red"), ("astronaut", "What is the person wearing?", "suit"),
             ("chelsea", "What animal is this?", "cat"), ("rocket", "What is on the launch pad?", "rocket")]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ray_local):
    """Four VQA samples and the two bundled referring expressions, rendered, and a tiny model fit to them."""
    root = tmp_path_factory.mktemp("evalrun")
    vqa = root / "vqa.jsonl"
    shutil.copytree(EXAMPLES / "images", root / "images")
    vqa.write_text("".join(json.dumps({"image": f"images/{image}.jpg", "question": q, "answer": a}) + "\n"
                           for image, q, a in QUESTIONS))
    shards = root / "shards"
    run_render([vqa], shards, RenderOptions(task="vqa"))
    run_render([EXAMPLES / "ref_grounding.jsonl"], shards, RenderOptions(task="ref_grounding"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    raw = tiny_setup(root, shards=[str(shards)], micro_batch=2, shuffle_buffer=8)
    cfg = load_config(2, values=raw, overrides=["optim.lr=3e-3", "optim.min_lr=3e-4", "optim.warmup_steps=5",
                                              "run.global_batch=2", "run.log_every=100", "run.steps=80"])
    train(cfg, root / "run", log=lambda line: None)
    yield root / "run" / "ckpt", shards
    torch.set_num_threads(before)


@pytest.fixture
def fed(monkeypatch):
    """What the model is fed: the token ids of every prompt, recorded around the real prompt builder."""
    calls = []
    real = generation.prompt_ids

    def recording(tok, prompt, n_images, image_tokens):
        ids = real(tok, prompt, n_images, image_tokens)
        calls.append(tok.decode(ids, skip_special_tokens=False))
        return ids

    monkeypatch.setattr(generation, "prompt_ids", recording)
    return calls


def test_vqa_on_memorised_samples(trained, fed, tmp_path, capsys):
    ckpt, shards = trained
    out = tmp_path / "vqa"
    assert main(["eval", "--checkpoint", str(ckpt), "--shards", f"{shards}/vqa-*.tar", "--metric", "vqa",
                 "--batch-size", "3", "--out", str(out), "--json", "--device", "cpu"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == {"metric": "vqa", "score": 100.0, "count": 4,
                       "benchmarks": [{"benchmark": "vqa", "metric": "vqa", "score": 100.0, "count": 4}]}
    pad = "<img>" + "<imgpad>" * 4 + "</img>"  # the tiny config's 4 image tokens
    assert fed == [f"{pad}{q} Answer:" for _, q, _ in QUESTIONS]
    rows = duckdb.sql(f"SELECT id, task, prompt, prediction, \"references\", score FROM '{out}/samples.parquet'"
                      ).fetchall()
    assert [(r[1], r[2], r[3], r[4], r[5]) for r in rows] == [
        ("vqa", f"<img></img>{q} Answer:", a, [a], 100.0) for _, q, a in QUESTIONS]
    assert len({r[0] for r in rows}) == 4
    assert json.loads((out / "scores.json").read_text())["checkpoint"] == str(ckpt)


def test_grounding_continues_after_box(trained, fed, tmp_path, capsys):
    ckpt, shards = trained
    assert main(["eval", "--checkpoint", str(ckpt), "--shards", str(shards), "--metric", "grounding",
                 "--limit", "2", "--device", "cpu"]) == 0
    # shard order: ref_grounding-* before vqa-*, so --limit 2 takes the two referring expressions
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["benchmark", "metric", "count", "score", "unparseable"]
    assert table[1].split() == ["ref_grounding", "grounding", "2", "100.00", "0"]
    pad = "<img>" + "<imgpad>" * 4 + "</img>"
    assert fed == [f"{pad}<ref>the cat's left eye</ref><box>", f"{pad}<ref>the spoon on the saucer</ref><box>"]


def test_eval_errors(trained, tmp_path, capsys):
    ckpt, shards = trained
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "scores.json").write_text("{}")
    cases = [
        (["--checkpoint", str(tmp_path), "--shards", str(shards)], "not a vlforge checkpoint directory"),
        (["--checkpoint", str(ckpt), "--shards", f"{tmp_path}/*.tar"], "no shards (*.tar) match"),
        (["--checkpoint", str(ckpt), "--shards", str(shards), "--limit", "0"], "--limit must be at least 1"),
        (["--checkpoint", str(ckpt), "--shards", str(shards), "--out", str(tmp_path / "done")], "already holds"),
    ]
    for args, message in cases:
        assert main(["eval", "--metric", "vqa", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("vlforge eval: error: ") and message in err and "Traceback" not in err
