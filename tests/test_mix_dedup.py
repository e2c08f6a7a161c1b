"""Cross-source duplicates: always reported; with drop_duplicates, dropped from the later-listed source with
`duplicate_image` (by identical bytes, or also by identical pHash). And GRIT's ref_exps as referring grounding."""

import io
import json
import shutil

import pytest
from mix_support import mix_layouts, read_tar_samples, sample_json, write_recipe
from PIL import Image

from vlforge.cli import main as cli
from vlforge.pipelines.mix.recipe import load_mix_recipe
from vlforge.pipelines.mix.run import build_mixture
from vlforge.shards.manifest import read_manifests

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    return mix_layouts.write_all(tmp_path_factory.mktemp("layouts"))


@pytest.fixture(scope="module")
def copies(fx, tmp_path_factory):
    """A JSONL source listed last: an exact copy of the GQA image, and the TextVQA image smaller, as PNG."""
    root = tmp_path_factory.mktemp("copies")
    (root / "img").mkdir()
    shutil.copy(fx["gqa"]["images"] / "2354786.jpg", root / "img" / "same.jpg")
    with Image.open(fx["textvqa"][1] / "0054c91397f2fe05.jpg") as im:
        im.resize((512, 384)).save(root / "img" / "smaller.png")
    lines = [{"image": "img/same.jpg", "caption": "the same bytes"}, {"image": "img/smaller.png", "caption": "smaller"}]
    (root / "copies.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return {"name": "copies", "task": "caption", "count": 2, "from": {"adapter": "jsonl",
                                                                      "path": str(root / "copies.jsonl")}}


def _mix(fx, copies, tmp_path, mode: str) -> tuple[list[dict], dict]:
    path = write_recipe(tmp_path / "mix.yaml", mix_layouts.recipe(fx, [copies]))
    assert cli(["mix", "--recipe", str(path), "--out", str(tmp_path / "out"), "--drop-duplicates", mode]) == 0
    return read_manifests(tmp_path / "out").to_pylist(), json.loads((tmp_path / "out" / "mix.json").read_text())


def test_by_bytes_the_later_source_loses_its_copies(fx, copies, tmp_path, ray_local):
    rows, mix = _mix(fx, copies, tmp_path, "sha256")
    dropped = sorted((r["source"], r["uid"]) for r in rows if r["reason"] == "duplicate_image")
    # refcoco's images are the COCO train2014 files VQAv2 (listed earlier) asks about; the GQA copy is byte-equal
    assert dropped == [("copies", "copies:1"), ("refcoco", "ref:0:0"), ("refcoco", "ref:0:1"), ("refcoco", "ref:1:2"),
                       ("refcoco", "ref:2:3")]
    assert mix["sources"]["refcoco"]["reasons"] == {"duplicate_image": 4}
    assert mix["sources"]["vqav2"]["kept"] == 2  # the earlier source keeps every sample
    assert mix["duplicates"]["sha256"]["images"] == 0  # nothing duplicated is left among the kept
    assert mix["duplicates"]["phash"]["by_sources"] == {"copies+textvqa": 1}  # reported, not dropped
    errors = {r["uid"]: r["error"] for r in rows if r["reason"] == "duplicate_image"}
    assert "also in gqa, a source listed earlier" in errors["copies:1"]


def test_by_phash_near_copies_are_dropped_too_and_a_rerun_changes_nothing(fx, copies, tmp_path, ray_local):
    rows, mix = _mix(fx, copies, tmp_path, "phash")
    dropped = {r["uid"] for r in rows if r["reason"] == "duplicate_image"}
    assert dropped == {"copies:1", "copies:2", "ref:0:0", "ref:0:1", "ref:1:2", "ref:2:3"}
    assert mix["duplicates"]["phash"]["images"] == 0
    hashed = sorted(p.name for p in (tmp_path / "out" / "_mixplan" / "hashes").glob("*.parquet"))
    assert len(hashed) == mix["units"]
    _, again = _mix(fx, copies, tmp_path, "phash")  # resumes: nothing to do, the same realised mix
    assert again["sources"] == mix["sources"]


def test_default_reports_only(fx, copies, tmp_path, ray_local):
    build_mixture(load_mix_recipe(write_recipe(tmp_path / "mix.yaml", mix_layouts.recipe(fx, [copies]))),
                  tmp_path / "out")
    mix = json.loads((tmp_path / "out" / "mix.json").read_text())
    assert all("duplicate_image" not in e["reasons"] for e in mix["sources"].values())
    assert mix["duplicates"]["sha256"]["by_sources"] == {"copies+gqa": 1, "refcoco+vqav2": 2}


def test_grit_ref_exps_render_as_referring_grounding(fx, tmp_path, ray_local):
    data = {"name": "grit-ref", "sources": [
        {"name": "grit-ref", "task": "ref_grounding", "count": 2, "from": {"adapter": "grit",
                                                                            "paths": [str(fx["grit"])]}},
        {"name": "grit-cap", "task": "grounded_caption", "count": 2, "from": {"adapter": "grit",
                                                                               "paths": [str(fx["grit"])]}}]}
    build_mixture(load_mix_recipe(write_recipe(tmp_path / "mix.yaml", data)), tmp_path / "out")
    samples = {(sample_json(f)["source"], sample_json(f)["meta"]["uid"]): f for f in read_tar_samples(tmp_path / "out")
               .values()}
    ref = sample_json(samples[("grit-ref", "grit:1000:0")])
    # normalised (0.1, 0.2), (0.95, 0.95) on the 0..999 grid of a 1 x 1 frame
    assert [s["text"] for s in ref["segments"]] == ["<img></img>", "<ref>a dog and a cat</ref>",
                                                    "<box>(100,200),(950,950)</box>"]
    car = sample_json(samples[("grit-cap", "grit:1001:0")])
    assert [s["text"] for s in car["segments"]][1:] == ["<ref>This</ref><box>(250,500),(999,750)</box> is",
                                                       " the red car"]  # x2 1.2 clipped to the frame
    with Image.open(io.BytesIO(samples[("grit-ref", "grit:1000:0")]["0.jpg"])) as im:
        assert im.size == (256, 192)
    rows = read_manifests(tmp_path / "out").to_pylist()
    assert {r["boxes_clipped"] for r in rows if r["uid"] == "grit:1001:0"} == {1}
