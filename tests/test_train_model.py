"""Model side of the trainer: adapter position embeddings and shapes, the vision tower, LM wiring, freezing, packing,
optimizer groups and the LR schedule. Tiny random models on CPU."""

import json
import math

import pytest

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

from vlforge.training.adapter import Adapter, sincos_2d  # noqa: E402
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
