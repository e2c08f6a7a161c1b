"""`vlforge clean` keeps thumbnails of the images its after-download filters dropped; the report shows them."""

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from stats_support import run_cli
from test_clean_support import ImageServer, photo, write_laion, write_recipe
from test_clean_support import jpeg as encode

from vlforge.pipelines.clean.recipe import load_recipe
from vlforge.pipelines.clean.run import clean
from vlforge.shards.manifest import read_manifests
from vlforge.shards.thumbs import THUMB_DIR, THUMB_SIDE
from vlforge.stats.grids import committed_thumbs


@pytest.mark.slow  # a real clean run against a 127.0.0.1 image server
def test_clean_keeps_thumbnails_of_what_its_filters_dropped(ray_local, tmp_path, capsys):
    """A real run: per drop reason, thumbnails beside the committed manifest, never in the tars."""
    text = "A clear photograph of {} taken outdoors on a sunny day"
    with ImageServer() as server:
        rows = [  # (id, image served, declared width, height, clip)
            (0, encode(photo("astronaut", 300, 300)), 300, 300, 0.35),  # kept
            (1, encode(photo("rocket", 400, 100)), 400, 300, 0.35),  # really 4:1: aspect_ratio_real
            (2, encode(photo("coffee", 50, 40)), 500, 400, 0.35),  # really 50x40: image_size_real
            (3, encode(photo("chelsea", 300, 200)), 300, 200, 0.10),  # CLIP score: dropped before download
            (4, b"these bytes are no image", 300, 300, 0.35),  # image filter: nothing to show
            (5, encode(photo("camera", 420, 100)), 420, 300, 0.35),  # aspect_ratio_real again
        ]
        dump = write_laion(tmp_path / "laion.parquet", [
            {"SAMPLE_ID": i, "URL": server.add(f"/{i}.jpg", body), "TEXT": text.format(f"thing {i}"), "WIDTH": w,
             "HEIGHT": h, "similarity": clip} for i, body, w, h, clip in rows])
        recipe = load_recipe(write_recipe(tmp_path / "recipe.yaml"))
        clean(recipe, tmp_path / "out", [("web", str(dump))])
    out = tmp_path / "out"
    manifest = {r["uid"]: r for r in read_manifests(out).to_pylist()}
    files = committed_thumbs(out)
    assert files and all(p.parent.name == THUMB_DIR for p in files)
    thumbs = pa.concat_tables([pq.read_table(p) for p in files]).to_pylist()
    by_uid = {t["uid"]: t for t in thumbs}
    assert set(by_uid) == {"1", "2", "5"}
    for uid, thumb in by_uid.items():
        assert (thumb["reason"], thumb["stage"]) == (manifest[uid]["reason"], manifest[uid]["stage"])
        with Image.open(io.BytesIO(thumb["jpeg"])) as im:
            assert max(im.size) <= THUMB_SIDE
    assert by_uid["1"]["reason"].startswith("aspect_ratio>") and by_uid["2"]["reason"].startswith("min_side<")
    assert manifest["3"]["status"] == manifest["4"]["status"] == "dropped"
    code, _, err = run_cli(capsys, "report", str(out), "--out", str(tmp_path / "r.html"))
    assert code == 0, err
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    for reason in {t["reason"] for t in thumbs}:
        assert f'<div class="grid dropped" data-reason="{reason.replace(">", "&gt;").replace("<", "&lt;")}">' in page
