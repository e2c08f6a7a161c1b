"""The perceptual-hash near-duplicate step: on its own, registered as a recipe op, and through a clean run."""

from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from test_clean_support import ImageServer, jpeg, manifest_rows, photo, png, tar_samples, write_laion, write_recipe

from vlforge.filters.near_duplicate import NearDuplicateFilter
from vlforge.pipelines.clean.recipe import NEEDS_IMAGE, OPS, RecipeError, load_recipe
from vlforge.pipelines.clean.run import clean

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
SENTENCE = "A clear photograph of {} taken outdoors on a sunny day"


@pytest.fixture(scope="module")
def images():
    """Two different photographs, and copies of the first that exact dedup cannot see (other bytes)."""
    from PIL import Image

    astronaut = photo("astronaut", 256, 256)
    return {"astronaut": jpeg(astronaut, quality=90), "astronaut_q40": jpeg(astronaut, quality=40),
            "astronaut_small": png(Image.fromarray(photo("astronaut", 128, 128))),
            "coffee": jpeg(photo("coffee", 256, 256))}


def batch(*datas):
    return pa.table({"image": pa.array(list(datas), pa.binary())})


def test_resized_and_reencoded_copies_are_dropped_other_photos_kept(images):
    result = NearDuplicateFilter().apply(batch(images["astronaut"], images["coffee"], images["astronaut_q40"],
                                               images["astronaut_small"]))
    assert result.reasons == [None, None, "near_duplicate", "near_duplicate"]
    hashes = result.batch["phash"].to_pylist()
    assert all(len(h) == 16 and int(h, 16) >= 0 for h in hashes)
    assert hashes[0] != hashes[1]


def test_earlier_batches_count_and_max_distance_zero_needs_equal_hashes(images):
    step = NearDuplicateFilter()
    assert step.apply(batch(images["astronaut"])).reasons == [None]
    assert step.apply(batch(images["coffee"], images["astronaut_q40"])).reasons == [None, "near_duplicate"]
    strict = NearDuplicateFilter(max_distance=0).apply(batch(images["astronaut"], images["coffee"]))
    assert strict.reasons == [None, None]


def test_missing_or_undecodable_images_are_reasons_not_crashes():
    result = NearDuplicateFilter().apply(batch(None, b"<html>not an image</html>"))
    assert result.reasons == ["image_missing", "image_unreadable"]
    assert result.batch["phash"].to_pylist() == [None, None]


def test_the_op_registers_itself_and_its_bounds_are_checked_by_the_recipe(tmp_path):
    assert OPS["near_duplicate"] is NearDuplicateFilter and "near_duplicate" in NEEDS_IMAGE
    with pytest.raises(RecipeError, match=r"after_download\.1: max_distance: Input should be less than or equal"):
        load_recipe(write_recipe(tmp_path / "r.yaml", after_download=[{"op": "image"},
                                                                      {"op": "near_duplicate", "max_distance": 99}]))
    with pytest.raises(RecipeError, match="needs the image"):
        load_recipe(write_recipe(tmp_path / "r.yaml", before_download=[{"op": "near_duplicate"}]))
    stage1 = yaml.safe_load((RECIPES / "qwenvl-stage1.yaml").read_text())
    assert "near_duplicate" in [step["op"] for step in stage1["after_download"]]
    load_recipe(RECIPES / "qwenvl-stage1.yaml")


def test_a_clean_run_drops_the_reencoded_copy_and_records_phash(ray_local, tmp_path, images):
    with ImageServer() as server:
        rows = [(name, server.add(f"/{name}.img", images[name]), SENTENCE.format(what))
                for name, what in [("astronaut", "an astronaut"), ("coffee", "a cup of coffee"),
                                   ("astronaut_q40", "the astronaut again")]]
        dump = write_laion(tmp_path / "laion.parquet", [
            {"SAMPLE_ID": i, "URL": url, "TEXT": text, "WIDTH": 256, "HEIGHT": 256, "similarity": 0.35}
            for i, (_, url, text) in enumerate(rows)])
        recipe = write_recipe(tmp_path / "recipe.yaml", rows_per_unit=10, after_download=[
            {"op": "image"}, {"op": "near_duplicate", "max_distance": 4}])
        clean(load_recipe(recipe), tmp_path / "out", [("web", str(dump))])
    manifest = {rows[int(row["uid"])][0]: row for row in manifest_rows(tmp_path / "out")}
    assert manifest["astronaut_q40"]["reason"] == "near_duplicate"
    assert manifest["astronaut_q40"]["stage"] == "near_duplicate"
    assert manifest["astronaut"]["reason"] is None and manifest["coffee"]["reason"] is None
    assert len(manifest["astronaut"]["phash"]) == 16
    assert len(tar_samples(tmp_path / "out")) == 2
