"""The computed CLIP score through the whole clean pipeline: a custom open_clip model in a Ray actor."""

import io
import json

import numpy as np
import pytest
from PIL import Image
from test_clean_pipeline import ENGLISH
from test_clean_support import ImageServer, by_uid, jpeg, photo, write_laion, write_recipe

from vlforge.pipelines.clean.recipe import load_recipe
from vlforge.pipelines.clean.run import clean

torch = pytest.importorskip("torch")
open_clip = pytest.importorskip("open_clip")

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "camera", "hubble_deep_field"]
THINGS = ["an astronaut", "a cup of coffee", "a cat", "a rocket", "a man with a camera", "distant galaxies"]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random tiny CLIP as a config file + checkpoint, the way a user brings a custom architecture."""
    root = tmp_path_factory.mktemp("clip")
    config = root / "vlforge-e2e-tiny-clip.json"
    config.write_text(json.dumps({
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}))
    open_clip.add_model_config(config)
    torch.manual_seed(1)
    model = open_clip.create_model("vlforge-e2e-tiny-clip", pretrained=None)
    checkpoint = root / "tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return config, checkpoint


def open_clip_cosines(model_files, images: list[bytes], captions: list[str]) -> np.ndarray:
    """Computed here with open_clip directly: normalised image and text embeddings, dot product."""
    _, checkpoint = model_files
    model, _, preprocess = open_clip.create_model_and_transforms("vlforge-e2e-tiny-clip", pretrained=None)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    tokenizer = open_clip.get_tokenizer("vlforge-e2e-tiny-clip")
    with torch.no_grad():
        pixels = torch.stack([preprocess(Image.open(io.BytesIO(b)).convert("RGB")) for b in images])
        image_features = model.encode_image(pixels)
        text_features = model.encode_text(tokenizer(captions))
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    text_features = text_features / text_features.norm(dim=-1, keepdim=True)
    return (image_features * text_features).sum(-1).numpy()


def test_computed_clip_scores_filter_rows_in_the_pipeline(ray_local, tmp_path, tiny_model):
    images = [jpeg(photo(name, 240, 200)) for name in PHOTOS]
    captions = [ENGLISH.format(thing) for thing in THINGS]
    expected = open_clip_cosines(tiny_model, images, captions)
    threshold = float(np.median(expected))
    config, checkpoint = tiny_model
    step = {"op": "clip_score_computed", "model_name": str(config), "checkpoint_path": str(checkpoint),
            "thresholds": threshold, "actors": 1}
    with ImageServer() as server:
        rows = [{"SAMPLE_ID": i, "URL": server.add(f"/{i}.jpg", data), "TEXT": caption, "WIDTH": 240,
                 "HEIGHT": 200, "similarity": 0.5}
                for i, (data, caption) in enumerate(zip(images, captions, strict=True))]
        dump = write_laion(tmp_path / "d.parquet", rows)
        recipe = load_recipe(write_recipe(tmp_path / "r.yaml", after_download=[{"op": "image"}, step]))
        clean(recipe, tmp_path / "out", [("web", str(dump))])
    manifest = by_uid(tmp_path / "out")
    scores = np.array([manifest[str(i)]["clip_score_computed"] for i in range(len(PHOTOS))])
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    for i, score in enumerate(expected):
        row = manifest[str(i)]
        if score >= threshold:
            assert row["status"] == "kept", row
        else:
            assert (row["status"], row["stage"]) == ("dropped", "clip_score_computed"), row
    assert sum(r["status"] == "kept" for r in manifest.values()) == int((expected >= threshold).sum()) >= 3


def test_missing_model_files_fail_before_any_work(tmp_path):
    step = {"op": "clip_score_computed", "model_name": str(tmp_path / "nope.json"),
            "checkpoint_path": str(tmp_path / "nope.pt"), "thresholds": 0.2}
    with pytest.raises(ValueError, match=r"checkpoint_path|model_name"):
        load_recipe(write_recipe(tmp_path / "r.yaml", after_download=[{"op": "image"}, step]))
