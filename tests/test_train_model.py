"""Model side of the trainer: adapter position embeddings and shapes, the vision tower, LM wiring, freezing, packing,
optimizer groups and the LR schedule. Tiny random models on CPU."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from train_tiny import batch, sample, tiny_setup  # noqa: E402

from vlforge.training.adapter import Adapter, sincos_2d  # noqa: E402
from vlforge.training.config import load_config  # noqa: E402
from vlforge.training.model import VLModel  # noqa: E402
from vlforge.training.optim import build_optimizer  # noqa: E402
from vlforge.training.schedule import lr_at  # noqa: E402
from vlforge.training.tokenizer import load_tokenizer  # noqa: E402
from vlforge.training.vision import VisionTower  # noqa: E402

TINY_VIT = {"vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16}}


@pytest.fixture(scope="module")
def vit_json(tmp_path_factory):
    path = tmp_path_factory.mktemp("vit") / "tiny-vit.json"
    path.write_text(json.dumps(TINY_VIT))
    return str(path)


# ---- adapter ----

def test_sincos_grid_matches_hand_values_width_4():
    s, c = math.sin(1.0), math.cos(1.0)
    # grid 2x2 row-major; channels: sin(x), cos(x), sin(y), cos(y) with x the column, y the row
    expected = torch.tensor([[0, 1, 0, 1], [s, c, 0, 1], [0, 1, s, c], [s, c, s, c]], dtype=torch.float32)
    torch.testing.assert_close(sincos_2d(4, 2), expected)


def test_sincos_grid_matches_hand_values_width_8():
    # 1D width 4: frequencies 1 and 1/10000**(1/2) = 0.01; layout sin(f1 p), sin(f2 p), cos(f1 p), cos(f2 p)
    grid = sincos_2d(8, 3)
    x, y = 2, 1  # position index y*3 + x = 5
    expected = [math.sin(x), math.sin(0.01 * x), math.cos(x), math.cos(0.01 * x),
                math.sin(y), math.sin(0.01 * y), math.cos(y), math.cos(0.01 * y)]
    torch.testing.assert_close(grid[5], torch.tensor(expected, dtype=torch.float32))
    assert grid.shape == (9, 8)


def test_sincos_rejects_widths_not_divisible_by_4():
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(6, 2)


def test_adapter_output_shape_and_fixed_query_positions():
    torch.manual_seed(0)
    adapter = Adapter(vit_width=32, lm_width=48, queries=16, heads=4)
    out = adapter(torch.randn(3, 49, 32))
    assert out.shape == (3, 16, 48)
    torch.testing.assert_close(adapter.query_pos, sincos_2d(48, 4))
    assert "query_pos" not in dict(adapter.named_parameters())


def test_adapter_keys_carry_patch_positions():
    """Without key positions cross-attention is blind to patch order; with them, swapping two patches matters."""
    torch.manual_seed(0)
    adapter = Adapter(vit_width=32, lm_width=32, queries=4, heads=2).eval()
    patches = torch.randn(1, 16, 32)
    swapped = patches[:, [1, 0, *range(2, 16)]]
    assert not torch.allclose(adapter(patches), adapter(swapped), atol=1e-4)
    adapter.key_pos = lambda n, like: torch.zeros_like(like[0])
    torch.testing.assert_close(adapter(patches), adapter(swapped), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("queries", [10, 50])
def test_adapter_needs_square_query_count(queries):
    with pytest.raises(ValueError, match="square number"):
        Adapter(32, 32, queries=queries, heads=2)


# ---- vision ----

@pytest.mark.parametrize("size", [32, 64])
def test_vision_tower_returns_every_patch_token_without_cls(vit_json, size):
    tower = VisionTower(vit_json, size)
    assert tower(torch.randn(2, 3, size, size)).shape == (2, (size // 8) ** 2, 32)
    names = [n for n, _ in tower.named_parameters()]
    assert not any("ln_post" in n or n.endswith(".proj") for n in names)  # no parameter without a gradient


def test_vision_weights_load_from_open_clip_checkpoint_and_interpolate(vit_json, tmp_path):
    """A full open_clip checkpoint trained at 32 px loads at 64 px: same tokens as open_clip's own model there."""
    config = {"embed_dim": 16, **TINY_VIT,
              "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 16, "heads": 2, "layers": 1}}
    (tmp_path / "tinyclip.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / "tinyclip.json")
    torch.manual_seed(1)
    clip = open_clip.create_model("tinyclip", pretrained=None)
    ckpt = tmp_path / "tinyclip.pt"
    torch.save(clip.state_dict(), ckpt)
    big = open_clip.create_model("tinyclip", pretrained=str(ckpt), force_image_size=64, weights_only=True).eval()

    tower = VisionTower(vit_json, 64)
    tower.load_weights(ckpt)
    tower.eval()
    images = torch.randn(2, 3, 64, 64)
    expected = big.visual.forward_intermediates(images, indices=1, intermediates_only=True,
                                                output_fmt="NLC")["image_intermediates"][-1]
    torch.testing.assert_close(tower(images), expected)
    assert tower.visual.positional_embedding.shape == (1 + 64, 32)


def test_vision_weights_of_another_vit_are_refused(vit_json, tmp_path):
    other = VisionTower(vit_json, 32)
    state = {k: v for k, v in other.state_dict().items() if "resblocks.1." not in k}
    torch.save(state, tmp_path / "short.pt")
    with pytest.raises(ValueError, match=r"do not fit model\.vision"):
        VisionTower(vit_json, 32).load_weights(tmp_path / "short.pt")


# ---- the VL model: tiny Llama + tiny ViT, hand-made batches ----


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    raw = tiny_setup(root)
    tok = load_tokenizer(raw["model"]["tokenizer"])
    return raw, tok


def build(setup, stage=2, seed=0, **model):
    raw, tok = setup
    cfg = load_config(stage, values={**raw, "model": {**raw["model"], **model}, "data": {**raw["data"], "shards": []}})
    torch.manual_seed(seed)
    vl = VLModel(cfg.model, tok, cfg.data.image_size, cfg.data.image_tokens)
    vl.set_trainable(cfg.model.train_vision, cfg.model.train_adapter, cfg.model.train_lm)
    return vl, cfg


def test_special_tokens_added_rows_are_the_mean_of_the_old_ones(setup):
    vl, _ = build(setup)
    weight = vl.lm.get_input_embeddings().weight
    assert weight.shape[0] == len(setup[1]) == 611
    torch.testing.assert_close(weight[600:], weight[:600].mean(0).expand(11, -1))
    assert vl.lm.get_output_embeddings().weight.shape[0] == 611


def test_tokenizer_without_special_tokens_is_refused(setup):
    from transformers import AutoTokenizer

    raw, _ = setup
    bare = AutoTokenizer.from_pretrained(raw["model"]["tokenizer"])
    with pytest.raises(ValueError, match="lacks the special tokens <img> </img> <imgpad>"):
        build((raw, bare))


def test_adapter_outputs_replace_imgpad_embeddings_in_order(setup):
    vl, _ = build(setup)
    tok = setup[1]
    pixels = torch.randn(3, 3, 32, 32)
    b = batch([[sample(tok, "two cats", 2, "a")], [sample(tok, "a dog", 1, "b")]], pixels)
    embeds = vl.embed(b)
    feats = vl.image_features(pixels)
    pads = b.input_ids == vl.imgpad_id
    torch.testing.assert_close(embeds[0][pads[0]], feats[:2].reshape(-1, 64))
    torch.testing.assert_close(embeds[1][pads[1]], feats[2])
    text = ~pads
    torch.testing.assert_close(embeds[text], vl.lm.get_input_embeddings()(b.input_ids)[text])


def test_image_count_mismatch_names_the_sample(setup):
    vl, _ = build(setup)
    tok = setup[1]
    b = batch([[sample(tok, "two cats", 2, "a"), sample(tok, "a dog", 1, "b")]], torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match=r"samples \['a', 'b'\]: 3 image spans but 2 images"):
        vl(b)
    ids, labels, n, _ = sample(tok, "a dog", 1, "short")
    cut = next(i for i, t in enumerate(ids) if t == vl.imgpad_id)
    del ids[cut], labels[cut]
    b = batch([[sample(tok, "cat", 1, "ok"), (ids, labels, n, "short")]], torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="sample 'short': 3 <imgpad> tokens is not a multiple of image_tokens=4"):
        vl(b)


def test_text_only_batch_still_gives_vision_a_zero_gradient(setup):
    vl, _ = build(setup)
    tok = setup[1]
    b = batch([[sample(tok, "only words here", 0, "t")]], torch.zeros(0, 3, 32, 32))
    out = vl(b)
    out.token_loss.sum().backward()
    for name, p in [*vl.vision.named_parameters(), *vl.adapter.named_parameters()]:
        assert p.grad is not None, name
        assert not p.grad.any(), name
    assert vl.lm.get_input_embeddings().weight.grad.any()


@pytest.mark.parametrize(("stage", "vision", "lm"), [(1, True, False), (2, True, True), (3, False, True)])
def test_stage_freezing(setup, stage, vision, lm):
    vl, cfg = build(setup, stage=stage)
    tok = setup[1]
    vl(batch([[sample(tok, "a red square", 1)]], torch.randn(1, 3, 32, 32))).token_loss.sum().backward()
    for module, trained in ((vl.vision, vision), (vl.adapter, True), (vl.lm, lm)):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) if trained else all(g is None for g in grads)
    in_optimizer = {id(p) for g in build_optimizer(vl, cfg.optim).param_groups for p in g["params"]}
    trainable = {id(p) for p in vl.parameters() if p.requires_grad}
    assert in_optimizer == trainable
    assert any(id(p) in in_optimizer for p in vl.lm.parameters()) == lm
    assert any(id(p) in in_optimizer for p in vl.vision.parameters()) == vision


def test_packed_row_equals_each_sample_alone(setup):
    """Block-causal mask + restarting positions: a packed row's per-sample loss and logits equal unpacked ones."""
    vl, _ = build(setup)
    vl.eval()
    tok = setup[1]
    a, b, c = sample(tok, "a cat on a mat", 1, "a"), sample(tok, "text only sample", 0, "b"), \
        sample(tok, "two images then words", 2, "c")
    pixels = torch.randn(3, 3, 32, 32)
    packed = vl(batch([[a, b, c]], pixels), return_logits=True)
    at, image = 0, 0
    for s in (a, b, c):
        alone = vl(batch([[s]], pixels[image:image + s[2]]), return_logits=True)
        span = slice(at, at + len(s[0]))
        torch.testing.assert_close(packed.logits[0, span], alone.logits[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(packed.token_loss[0, span], alone.token_loss[0], atol=1e-5, rtol=1e-5)
        assert torch.equal(packed.supervised[0, span], alone.supervised[0])
        at, image = at + len(s[0]), image + s[2]
    # the first token of b and c is not predicted from the sample before it
    assert not packed.supervised[0, len(a[0])] and not packed.supervised[0, len(a[0]) + len(b[0])]


def test_padding_rows_do_not_change_the_loss(setup):
    vl, _ = build(setup)
    vl.eval()
    tok = setup[1]
    short, long = sample(tok, "hi", 1, "s"), sample(tok, "a much longer caption with many words", 1, "l")
    pixels = torch.randn(2, 3, 32, 32)
    both = vl(batch([[short], [long]], pixels))
    alone = vl(batch([[short]], pixels[:1]))
    n = len(short[0])
    torch.testing.assert_close(both.token_loss[0, :n], alone.token_loss[0], atol=1e-5, rtol=1e-5)
    assert not both.supervised[0, n:].any()


# ---- optimizer groups and schedule ----

def test_layer_wise_decay_factors_and_no_decay_groups(setup):
    vl, cfg = build(setup, stage=2)
    opt = build_optimizer(vl, cfg.optim)
    group_of = {id(p): g for g in opt.param_groups for p in g["params"]}
    named = dict(vl.named_parameters())

    def group(name):
        return group_of[id(named[name])]

    # 2 ViT blocks, decay 0.95: embeddings 0.95^3, block 0 0.95^2, block 1 0.95, adapter and LM 1
    assert group("vision.visual.conv1.weight")["lr_scale"] == pytest.approx(0.95 ** 3)
    assert group("vision.visual.positional_embedding")["lr_scale"] == pytest.approx(0.95 ** 3)
    assert group("vision.visual.transformer.resblocks.0.mlp.c_fc.weight")["lr_scale"] == pytest.approx(0.95 ** 2)
    assert group("vision.visual.transformer.resblocks.1.attn.in_proj_weight")["lr_scale"] == pytest.approx(0.95)
    assert group("adapter.kv_proj.weight")["lr_scale"] == 1.0
    assert group("lm.model.layers.0.self_attn.q_proj.weight")["lr_scale"] == 1.0
    assert group("adapter.kv_proj.weight")["weight_decay"] == 0.05
    for name in ("vision.visual.transformer.resblocks.0.ln_1.bias", "vision.visual.positional_embedding",
                 "adapter.query", "lm.model.norm.weight"):
        assert group(name)["weight_decay"] == 0.0, name
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-6


def test_lr_schedule_values():
    values = {s: lr_at(s, 1e-3, 1e-5, warmup=10, total=110) for s in (0, 4, 9, 10, 60, 110, 500)}
    assert values[0] == pytest.approx(1e-4)
    assert values[4] == pytest.approx(5e-4)
    assert values[9] == pytest.approx(1e-3)
    assert values[10] == pytest.approx(1e-3)
    assert values[60] == pytest.approx(1e-5 + (1e-3 - 1e-5) / 2)
    assert values[110] == pytest.approx(1e-5)
    assert values[500] == pytest.approx(1e-5)
    assert lr_at(85, 1e-3, 1e-5, 10, 110) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + math.cos(0.75 * math.pi)))


def test_step_flops_count_the_lm_as_torchtitan_does(setup):
    """Tiny Llama, tied head: 611·64 embedding + 2 layers of (q 64·64, k and v 64·32, o 64·64, MLP 3·64·128,
    2 norms of 64) + final norm 64 = 113152 parameters; 128 tokens of context 128, 2 layers of width 64."""
    from vlforge.training.loop import step_flops

    n = 611 * 64 + 2 * (4096 + 2048 + 2048 + 4096 + 3 * 64 * 128 + 128) + 64
    frozen, _ = build(setup, stage=1)  # LM frozen: forward only
    _, cfg = build(setup, stage=2)
    assert step_flops(frozen, cfg, 128, 0) == 128 * (2 * n + 4 * 2 * 64 * 128)
    trained, cfg = build(setup, stage=2)
    assert step_flops(trained, cfg, 128, 0) == 128 * (6 * n + 12 * 2 * 64 * 128)
    assert step_flops(trained, cfg, 128, 1) > step_flops(trained, cfg, 128, 0)  # an image adds ViT + adapter work


def test_activation_checkpointing_gives_the_same_gradients(setup):
    tok = setup[1]
    pixels = torch.randn(2, 3, 32, 32)
    b = batch([[sample(tok, "a cat on a mat", 1, "a"), sample(tok, "a dog", 1, "b")]], pixels)
    grads = []
    for checkpointing in (False, True):
        vl, _ = build(setup, grad_checkpointing=checkpointing)
        vl.train()
        vl(b).token_loss.sum().backward()
        grads.append({n: p.grad for n, p in vl.named_parameters()})
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-6, msg=name)
