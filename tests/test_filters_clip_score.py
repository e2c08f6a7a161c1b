import io
import json
import pickle

import numpy as np
import pyarrow as pa
import pytest
import skimage.data
from PIL import Image

from vlforge.filters.base import ScoreHistogram, run_filters
from vlforge.filters.clip_score import ClipScoreFilter, ComputedClipScoreFilter


def scored(scores, sources, models=None):
    columns = {"uid": [str(i) for i in range(len(scores))], "source": pa.array(sources, pa.string()),
               "clip_score": pa.array(scores, pa.float64())}
    if models is not None:
        columns["clip_model"] = pa.array(models, pa.string())
    return pa.table(columns)


def test_one_threshold_for_every_source():
    result = ClipScoreFilter(0.28).apply(scored([0.3, 0.28, 0.2799, None, float("nan")], ["a"] * 5))
    assert result.reasons == [None, None, "clip_score<0.28", "clip_score_missing", "clip_score_missing"]
    assert result.batch["clip_threshold"].to_pylist() == [0.28] * 5


def test_thresholds_per_source_with_default_and_unjudged_sources():
    batch = scored([0.25, 0.25, 0.25, None, 0.1], ["laion", "coyo", "cc3m", "cc3m", None])
    result = ClipScoreFilter({"laion": 0.28, "coyo": 0.2}).apply(batch)
    assert result.reasons == ["clip_score<0.28", None, None, None, None]  # cc3m and null source: not judged
    assert result.batch["clip_threshold"].to_pylist() == [0.28, 0.2, None, None, None]
    result = ClipScoreFilter({"laion": 0.28}, default=0.3).apply(batch)
    assert result.reasons == ["clip_score<0.28", "clip_score<0.3", "clip_score<0.3",
                              "clip_score_missing", "clip_score<0.3"]


def test_missing_scores_can_be_kept():
    result = ClipScoreFilter(0.3, missing="keep").apply(scored([None, 0.1], ["a", "a"]))
    assert result.reasons == [None, "clip_score<0.3"]


def test_score_of_another_model_counts_as_missing():
    batch = scored([0.35, 0.35, 0.35], ["a"] * 3, ["ViT-L-14", "ViT-B-32", None])
    result = ClipScoreFilter(0.3, model="ViT-L-14").apply(batch)
    assert result.reasons == [None, "clip_score_missing", "clip_score_missing"]


def test_absent_score_or_model_column():
    result = ClipScoreFilter(0.3).apply(pa.table({"source": ["a"]}))
    assert result.reasons == ["clip_score_missing"]
    result = ClipScoreFilter(0.3, model="ViT-L-14").apply(scored([0.5], ["a"]))
    assert result.reasons == ["clip_score_missing"]


def test_bad_missing_policy_is_named():
    with pytest.raises(ValueError, match="missing"):
        ClipScoreFilter(0.3, missing="skip")


def batches_of(scores, source, size=300):
    for start in range(0, len(scores), size):
        yield scored(scores[start:start + size], [source] * len(scores[start:start + size]))


def top_thresholds(batches, fractions, bins=20_000):
    """What the clean plan does with a top-fraction step: one histogram pass, then a threshold per source."""
    histogram = ScoreHistogram(bins)
    for batch in batches:
        histogram.add(batch, "clip_score")
    return {source: histogram.threshold(source, fraction) for source, fraction in fractions.items()}


def test_top_fraction_threshold_keeps_that_fraction_in_one_streaming_pass():
    rng = np.random.default_rng(0)
    scores = {"datacomp": rng.normal(0.25, 0.05, 5000).tolist(),
              "laion": rng.normal(0.3, 0.03, 3000).tolist()}
    stream = (b for source, values in scores.items() for b in batches_of(values, source))
    thresholds = top_thresholds(stream, {"datacomp": 0.3, "laion": 0.5})
    for source, fraction in [("datacomp", 0.3), ("laion", 0.5)]:
        values = np.array(scores[source])
        exact = np.sort(values)[::-1][int(fraction * len(values)) - 1]  # the k-th best score
        assert exact - 1e-4 <= thresholds[source] <= exact  # within one bin below the exact cut
        kept = (values >= thresholds[source]).mean()
        assert fraction <= kept <= fraction + 0.002
    filtered = ClipScoreFilter(thresholds).apply(scored(scores["laion"], ["laion"] * 3000))
    assert 1500 <= filtered.keep.sum() <= 1506


def test_each_source_has_its_own_cut():
    batch = scored([0.1, 0.2, 0.3, 0.4, 0.5, -0.5], ["a", "a", "a", "a", "b", "c"])
    thresholds = top_thresholds([batch], {"a": 0.5, "b": 0.5, "c": 0.5})
    assert thresholds["a"] == pytest.approx(0.3, abs=1e-4)
    assert thresholds["b"] == pytest.approx(0.5, abs=1e-4) and thresholds["c"] == pytest.approx(-0.5, abs=1e-4)


def test_histogram_ignores_nan_clips_out_of_range_and_merges():
    left = ScoreHistogram(bins=200)
    left.add(scored([0.5, None, float("nan"), 7.0], ["a"] * 4), "clip_score")
    right = ScoreHistogram(bins=200)
    right.add(scored([-3.0, 0.5], ["a", "b"]), "clip_score")
    merged = left.merge(right)
    assert merged.counts["a"].sum() == 3 and merged.counts["b"].sum() == 1
    assert merged.counts["a"][-1] == 1 and merged.counts["a"][0] == 1
    assert merged.threshold("a", 1 / 3) == pytest.approx(0.99)  # the top bin holds the clipped 7.0
    with pytest.raises(ValueError, match="bins"):
        left.merge(ScoreHistogram(bins=100))


def test_thresholds_from_a_parquet_dataset(tmp_path):
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    for part in range(3):
        scores = [part / 10 + i / 1000 for i in range(100)]
        batch = scored(scores, ["a"] * 100).append_column("caption", pa.array(["x"] * 100))
        pq.write_table(batch, tmp_path / f"part-{part}.parquet")
    thresholds = top_thresholds(ds.dataset(tmp_path).to_batches(columns=["clip_score", "source"]), {"a": 0.1})
    assert thresholds == {"a": pytest.approx(0.27, abs=1e-4)}  # the 30 best of 300 score >= 0.27


def test_null_sources_are_not_counted():
    histogram = ScoreHistogram(bins=100)
    histogram.add(scored([0.1, 0.2], ["a", None]), "clip_score")
    assert list(histogram.counts) == ["a"] and histogram.counts["a"].sum() == 1


@pytest.mark.parametrize("bins", [200, 20_000])
@pytest.mark.parametrize("cut", [0.35, 0.3623, -0.66, 0.0])
def test_a_score_exactly_at_the_cut_is_kept(bins, cut):
    # -1 + 2 * k / bins rounds to a float just above some decimal scores in bin k (0.35 -> 0.3500000000000001)
    scores = scored([cut - 0.1, cut, cut + 0.1, cut + 0.2], ["a"] * 4)
    thresholds = top_thresholds([scores], {"a": 0.75}, bins=bins)
    assert thresholds["a"] <= cut
    assert ClipScoreFilter(thresholds).apply(scores).keep.tolist() == [False, True, True, True]


def test_every_bin_edge_as_the_cut_keeps_the_top_rows():
    grid = np.round(np.arange(-0.9999, 1.0, 1e-4), 4)  # each default bin's edge, written as a decimal
    histogram = ScoreHistogram()
    histogram.add(scored(grid.tolist(), ["a"] * len(grid)), "clip_score")
    best_first = grid[::-1]
    for top in range(1, len(grid) + 1, 7):
        threshold = histogram.threshold("a", top / len(grid))
        assert threshold <= best_first[top - 1], top  # the top rows are all kept
        assert (grid >= threshold).sum() <= top + 1, top  # and at most one more, sharing the last one's bin


def test_a_top_fraction_keeps_that_many_rows_despite_float_products():
    scores = scored([i / 100 for i in range(100)], ["a"] * 100)
    assert top_thresholds([scores], {"a": 0.07})["a"] == pytest.approx(0.93, abs=1e-4)  # 0.07 * 100 != 7.0


# ---- computed scores with a tiny randomly initialised open_clip model ----

TINY = "vlforge-test-tiny-clip"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    torch = pytest.importorskip("torch")
    open_clip = pytest.importorskip("open_clip")
    root = tmp_path_factory.mktemp("clip")
    config = {"embed_dim": 32,
              "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
              "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (root / f"{TINY}.json").write_text(json.dumps(config))
    open_clip.add_model_config(root / f"{TINY}.json")
    torch.manual_seed(0)
    model = open_clip.create_model(TINY, pretrained=None)
    path = root / "tiny.pt"
    torch.save(model.state_dict(), path)
    return path


def photo_batch():
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea(), skimage.data.rocket()]
    images = []
    for array in photos:
        out = io.BytesIO()
        Image.fromarray(array).save(out, "JPEG")
        images.append(out.getvalue())
    captions = ["an astronaut", "a cup of coffee", "a cat", "a rocket on the launch pad"]
    return pa.table({"uid": list("abcd"), "source": ["s"] * 4, "image": images, "caption": captions})


def hand_computed_cosines(checkpoint, batch):
    """Cosine of normalised embeddings, computed here with open_clip's own model and transforms."""
    import open_clip
    import torch

    model, _, preprocess = open_clip.create_model_and_transforms(TINY, pretrained=None)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    tokenizer = open_clip.get_tokenizer(TINY)
    out = []
    with torch.no_grad():
        for data, caption in zip(batch["image"].to_pylist(), batch["caption"].to_pylist(), strict=True):
            image = preprocess(Image.open(io.BytesIO(data)).convert("RGB")).unsqueeze(0)
            image_features = model.encode_image(image)
            text_features = model.encode_text(tokenizer([caption]))
            image_features = image_features / image_features.norm(dim=-1, keepdim=True)
            text_features = text_features / text_features.norm(dim=-1, keepdim=True)
            out.append(float((image_features @ text_features.T)[0, 0]))
    return np.array(out)


def test_computed_score_is_open_clip_cosine(tiny_checkpoint):
    batch = photo_batch()
    expected = hand_computed_cosines(tiny_checkpoint, batch)
    assert len(set(np.round(expected, 6))) == 4  # distinct pairs give distinct scores
    threshold = float(np.median(expected))
    flt = ComputedClipScoreFilter(TINY, tiny_checkpoint, threshold, batch_size=3, device="cpu")
    result = flt.apply(batch)
    np.testing.assert_allclose(result.batch["clip_score_computed"].to_numpy(), expected, atol=1e-5)
    assert result.keep.tolist() == (expected >= threshold).tolist()
    assert [r for r in result.reasons if r] == [f"clip_score<{threshold:g}"] * 2


def test_unreadable_image_is_a_reason_not_a_crash(tiny_checkpoint):
    batch = photo_batch()
    images = batch["image"].to_pylist()
    images[1] = b"<html>not an image</html>"
    batch = batch.set_column(batch.schema.get_field_index("image"), "image", pa.array(images, pa.binary()))
    kept, dropped = run_filters(batch, [ComputedClipScoreFilter(TINY, tiny_checkpoint, -1.0)])
    assert kept["uid"].to_pylist() == ["a", "c", "d"]
    assert dropped["reason"].to_pylist() == ["image_unreadable"]
    assert dropped["clip_score_computed"].to_pylist() == [None]


def test_filter_pickles_without_its_model(tiny_checkpoint):
    flt = ComputedClipScoreFilter(TINY, tiny_checkpoint, -1.0)
    flt.apply(photo_batch())
    clone = pickle.loads(pickle.dumps(flt))
    assert clone._scorer is None
    assert clone.apply(photo_batch()).keep.all()


def test_missing_checkpoint_fails_early_or_skips_without_inventing_scores(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint_path"):
        ComputedClipScoreFilter("ViT-B-32", tmp_path / "absent.pt", 0.3, on_missing="fail")
    with pytest.raises(FileNotFoundError, match="checkpoint_path"):
        ComputedClipScoreFilter("ViT-B-32", None, 0.3)
    skip = ComputedClipScoreFilter("ViT-B-32", tmp_path / "absent.pt", 0.3, on_missing="skip")
    result = skip.apply(photo_batch())
    assert result.keep.all()
    assert result.batch["clip_score_computed"].to_pylist() == [None] * 4
    with pytest.raises(ValueError, match="on_missing"):
        ComputedClipScoreFilter("ViT-B-32", None, 0.3, on_missing="ignore")


class NotAWeight:
    pass


def test_checkpoint_with_arbitrary_objects_is_refused(tiny_checkpoint, tmp_path):
    import torch

    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": torch.load(tiny_checkpoint, weights_only=True), "payload": NotAWeight()}, evil)
    with pytest.raises(pickle.UnpicklingError):
        ComputedClipScoreFilter(TINY, evil, 0.3).apply(photo_batch())


def test_batch_size_below_one_is_refused_at_construction():
    """A batch of 0 images would loop forever or crash in a worker; it is refused where the recipe is read."""
    with pytest.raises(ValueError, match=r"batch_size\n  Input should be greater than or equal to 1"):
        ComputedClipScoreFilter("ViT-B-32", None, on_missing="skip", batch_size=0)
