"""Mix recipe validation: every error names the field path, before any work."""

import pytest
from mix_support import write_recipe

from vlforge.pipelines.mix.recipe import MixError, load_mix_recipe

SOURCE = {"name": "vqa", "task": "vqa", "weight": 1,
          "from": {"adapter": "vqav2", "questions": "q.json", "annotations": "a.json", "images": "train2014"}}


@pytest.mark.parametrize(("change", "message"), [
    ({"sources": [{**SOURCE, "from": {**SOURCE["from"], "image_dir": "x"}}]},
     r"sources.0.from.vqav2.image_dir: Extra inputs are not permitted"),
    ({"sources": [{**SOURCE, "count": 3}]}, r"sources.0: give exactly one of weight and count"),
    ({"sources": [{**SOURCE, "task": "caption"}]}, r"sources.0: adapter vqav2 gives tasks \['vqa'\], not 'caption'"),
    ({"sources": [{**SOURCE, "weight": 0}]}, r"sources.0.weight: Input should be greater than 0"),
    ({"sources": [{**SOURCE, "from": {"adapter": "laion"}}]}, r"sources.0.from: Input tag 'laion'"),
    ({"sources": [SOURCE, SOURCE]}, r"source names must be unique; repeated: \['vqa'\]"),
    ({"images": {"max_side": 8}}, r"images.max_side: Input should be greater than or equal to 32"),
    ({"sources": []}, r"sources: List should have at least 1 item"),
    ({"shuffle": True}, r"shuffle: Extra inputs are not permitted"),
])
def test_bad_recipes_name_the_field(tmp_path, change, message):
    path = write_recipe(tmp_path / "mix.yaml", {"name": "m", "sources": [SOURCE], **change})
    with pytest.raises(MixError, match=message):
        load_mix_recipe(path)


def test_errors_name_the_file_before_the_field_path(tmp_path):
    path = write_recipe(tmp_path / "mix.yaml", {"name": "m", "sources": [SOURCE], "images": {"max_side": 8}})
    with pytest.raises(MixError) as caught:
        load_mix_recipe(path)
    assert str(caught.value) == f"{path}: images.max_side: Input should be greater than or equal to 32"


def test_cli_overrides_apply_and_are_validated(tmp_path):
    path = write_recipe(tmp_path / "mix.yaml", {"name": "m", "sources": [SOURCE], "images": {"quality": 80}})
    assert load_mix_recipe(path, {"seed": 5, "total": None}).seed == 5
    with pytest.raises(MixError, match="total: Input should be greater than or equal to 1"):
        load_mix_recipe(path, {"total": 0})
    dotted = load_mix_recipe(path, {"images.max_side": 224})
    assert (dotted.images.max_side, dotted.images.quality) == (224, 80)  # the rest of the section stays
    with pytest.raises(MixError, match=r"mix\.yaml: shards\.max_bytes: Input should be greater than or equal to 1"):
        load_mix_recipe(path, {"shards.max_bytes": 0})
    with pytest.raises(MixError, match=r"^override sources\.0\.weight: sources is a list, not a mapping$"):
        load_mix_recipe(path, {"sources.0.weight": 3})


def test_unreadable_recipe_files(tmp_path):
    with pytest.raises(MixError, match=r"no\.yaml"):
        load_mix_recipe(tmp_path / "no.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(MixError, match=r"bad\.yaml"):
        load_mix_recipe(bad)


def test_the_shipped_stage2_recipe_is_valid():
    from conftest import ROOT

    recipe = load_mix_recipe(ROOT / "recipes" / "mix-stage2.yaml")
    by_task: dict[str, float] = {}
    for source in recipe.sources:
        by_task[source.task] = by_task.get(source.task, 0) + source.weight
    table3 = {"caption": 19.7, "vqa": 3.6, "grounding": 3.5, "ref_grounding": 8.7, "grounded_caption": 8.7,
              "ocr": 24.8, "text": 7.8}  # Qwen-VL paper, Table 3, millions of samples
    assert {task: round(w, 2) for task, w in by_task.items()} == table3
    assert {s.source.adapter for s in recipe.sources if s.task == "ref_grounding"} == {"grit", "refcoco",
                                                                                       "visual_genome"}
