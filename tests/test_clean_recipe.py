"""Recipes are validated before any work: every mistake names its field."""

import re
from pathlib import Path

import pytest
import yaml
from test_clean_support import RECIPE, parse_clean_args, write_recipe

from vlforge.pipelines.clean.recipe import RecipeError, load_recipe
from vlforge.pipelines.clean.run import parse_inputs, recipe_overrides

QWENVL_SOURCES = {"laion-en", "laion-zh", "laion-coco", "datacomp", "coyo", "cc12m", "cc3m", "sbu", "coco-captions"}


def test_shipped_qwenvl_recipe_loads_with_per_source_steps() -> None:
    recipe = load_recipe(RECIPE)
    assert set(recipe.sources) == QWENVL_SOURCES
    language = {s: next(x for x in recipe.source_steps(s, "before_download") if x.op == "language").params["keep"]
                for s in recipe.sources}
    assert language["laion-zh"] == ["zh"]
    assert {tuple(v) for s, v in language.items() if s != "laion-zh"} == {("en",)}
    clip = {s: next((x for x in recipe.source_steps(s, "before_download") if x.op == "clip_score"), None)
            for s in recipe.sources}
    assert clip["cc3m"] is None and clip["coco-captions"] is None
    assert clip["datacomp"].top_fraction == 0.3 and clip["datacomp"].params["column"] == "clip_l14_score"
    assert clip["laion-en"].params["thresholds"] == 0.32 and clip["laion-zh"].params["thresholds"] == 0.26
    computed = {s for s in recipe.sources
                if any(x.op == "clip_score_computed" for x in recipe.source_steps(s, "after_download"))}
    assert computed == {"cc12m", "sbu"}
    assert recipe.download.allow_loopback is False


def test_every_threshold_in_the_shipped_recipe_names_its_origin() -> None:
    keys = ("thresholds", "max_ratio", "min_side", "min_words", "min_chars", "max_chars", "max_words",
            "max_raw_chars", "top_fraction", "max_pixels: 8")
    lines = [line for line in RECIPE.read_text().splitlines()
             if any(k in line.split("#")[0] for k in keys) and not line.lstrip().startswith("#")]
    assert len(lines) >= 15
    for line in lines:
        assert re.search(r"#.*\[(DataComp|LAION-5B|PIL|chosen)\]", line), f"threshold without its origin: {line}"
    per_source = [line for line in RECIPE.read_text().split("\nsources:")[1].splitlines() if "{" in line]
    assert len(per_source) >= len(QWENVL_SOURCES)
    for line in per_source:
        assert "#" in line, f"per-source override without a reason: {line}"


def _load_with(tmp_path: Path, **overrides) -> None:
    load_recipe(write_recipe(tmp_path / "r.yaml", **overrides))


def test_a_small_recipe_loads(tmp_path: Path) -> None:
    recipe = load_recipe(write_recipe(tmp_path / "r.yaml"))
    assert [s.name for s in recipe.steps()] == ["aspect_ratio", "image_size", "clip_score", "caption", "language",
                                                "image", "aspect_ratio_real", "image_size_real"]


@pytest.mark.parametrize("overrides, message", [
    ({"colour": "blue"}, r"colour: Extra inputs are not permitted"),
    ({"rows_per_unit": 0}, r"rows_per_unit: Input should be greater than or equal to 1"),
    ({"download": {"timeout": "soon"}}, r"download\.timeout: Input should be a valid number"),
    ({"download": {"threads": 4}}, r"download\.threads: Extra inputs are not permitted"),
    ({"download": {"resize_mode": "stretch"}}, r"download\.resize_mode: Input should be"),
    ({"before_download": [{"op": "aspect_ratio", "max_ratio": "wide"}]},
     r"before_download\.0: .*max_ratio: Input should be a valid number"),
    ({"before_download": [{"op": "aspect_ratio", "ratio": 3}]}, r"before_download\.0: .*ratio: Extra inputs"),
    ({"before_download": [{"op": "sharpness"}]}, r"before_download\.0\.op: Input should be 'aspect_ratio'"),
    ({"before_download": [{"op": "image", "name": "early"}]}, r"before_download\.0 \(early\): op image needs the"),
    ({"before_download": [{"op": "caption", "top_fraction": 0.5}]}, r"top_fraction: only the clip_score op"),
    ({"before_download": [{"op": "clip_score", "top_fraction": 1.5}]},
     r"before_download\.0\.top_fraction: Input should be less than or equal to 1"),
    ({"before_download": [{"op": "clip_score", "top_fraction": 0}]},
     r"before_download\.0\.top_fraction: Input should be greater than 0"),
    ({"after_download": [{"op": "image"}, {"op": "near_duplicate", "actors": 2}]},
     r"after_download\.1: actors: op near_duplicate remembers earlier rows"),
    ({"after_download": [{"op": "aspect_ratio", "name": "late"}]}, r"source web has no enabled `image` step"),
    ({"after_download": [{"op": "clip_score_computed", "model_name": "m", "checkpoint_path": None,
                          "on_missing": "skip"}, {"op": "image"}]},
     r"step clip_score_computed \(clip_score_computed\) needs `image` before it, but source web has step image"),
    ({"before_download": [{"op": "caption"}, {"op": "caption"}]},
     r"step names must be unique; repeated: \['caption'\]"),
    ({"sources": {"web": {"filters": {"captions": {"min_words": 3}}}}}, r"sources\.web\.filters\.captions: no step"),
    ({"sources": {"web": {"filters": {"caption": {"min_words": "three"}}}}},
     r"sources\.web\.filters\.caption: min_words: Input should be a valid integer"),
    ({"sources": {"web": {"schema": "flickr"}}}, r"sources\.web\.schema: Input should be 'auto'"),
    ({"sources": {"web": {"columns": {"link": "URL"}}}}, r"sources\.web\.columns: unknown field\(s\) \['link'\]"),
    ({"sources": {}}, r"sources: Dictionary should have at least 1 item"),
    ({"before_download": [{"op": "aspect_ratio", "max_ratio": 0.5}]},
     r"before_download\.0: max_ratio: Input should be greater than or equal to 1"),  # bound in the signature
    ({"before_download": [{"op": "caption", "min_words": -1}]},
     r"before_download\.0: min_words: Input should be greater than or equal to 0"),
    ({"before_download": [{"op": "language", "keep": []}]},
     r"before_download\.0: keep: Tuple should have at least 1 item"),
    ({"after_download": [{"op": "image"}, {"op": "clip_score_computed", "model_name": "m", "checkpoint_path": None,
                                           "on_missing": "skip", "batch_size": 0}]},
     r"after_download\.1: batch_size: Input should be greater than or equal to 1"),
])
def test_bad_recipes_fail_naming_the_field(tmp_path: Path, overrides: dict, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        _load_with(tmp_path, **overrides)


def test_missing_clip_checkpoint_fails_before_work(tmp_path: Path) -> None:
    step = {"op": "clip_score_computed", "model_name": "ViT-B-32", "checkpoint_path": str(tmp_path / "none.pt")}
    with pytest.raises(RecipeError, match=r"clip_score_computed.*checkpoint_path: no CLIP checkpoint"):
        _load_with(tmp_path, after_download=[{"op": "image"}, step])


def test_pooled_steps_differ_per_source_only_in_thresholds(tmp_path: Path) -> None:
    step = {"op": "image", "actors": 1}
    with pytest.raises(RecipeError, match=r"sources\.web\.filters\.image: \['quality'\] cannot differ per source"):
        _load_with(tmp_path, after_download=[step], sources={"web": {"filters": {"image": {"quality": 80}}}})


def test_file_errors_are_recipe_errors(tmp_path: Path) -> None:
    """The file-level cases (bad YAML, not a mapping) are vlforge.config's, tested in test_config.py."""
    with pytest.raises(RecipeError, match="no such file"):
        load_recipe(tmp_path / "absent.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(RecipeError, match="a recipe is a mapping"):
        load_recipe(tmp_path / "list.yaml")


def test_cli_flags_override_recipe_keys(tmp_path: Path) -> None:
    path = write_recipe(tmp_path / "r.yaml", download={"allow_loopback": False})
    args = parse_clean_args("--recipe", str(path), "--out", str(tmp_path / "o"), "--allow-loopback",
                            "--url-col", "link", "--caption-col", "alt", "--rows-per-unit", "7",
                            "--num-cpus", "2", "--ray-address", "127.0.0.1:6379")
    recipe = load_recipe(path, recipe_overrides(args, ["web"]))
    assert recipe.download.allow_loopback is True
    assert recipe.sources["web"].columns == {"url": "link", "caption": "alt"}
    assert (recipe.rows_per_unit, recipe.num_cpus, recipe.ray_address) == (7, 2, "127.0.0.1:6379")
    unchanged = load_recipe(path, recipe_overrides(parse_clean_args("--recipe", str(path), "--out", "o"), ["web"]))
    assert unchanged.download.allow_loopback is False and unchanged.rows_per_unit == 4


def test_inputs_name_their_source(tmp_path: Path) -> None:
    single = load_recipe(write_recipe(tmp_path / "one.yaml"))
    assert parse_inputs(["/data/x.parquet", "web=/data/y"], single) == [("web", "/data/x.parquet"), ("web", "/data/y")]
    many = load_recipe(RECIPE)
    assert parse_inputs(["laion-zh=/d/zh", "coyo=s3://b/c"], many) == [("laion-zh", "/d/zh"), ("coyo", "s3://b/c")]
    with pytest.raises(RecipeError, match=r"--input '/d/x': name its source as SOURCE=PATH"):
        parse_inputs(["/d/x"], many)


def test_recipe_keys_are_yaml_safe_loaded(tmp_path: Path) -> None:
    (tmp_path / "evil.yaml").write_text("name: !!python/object/apply:os.system ['echo pwned']\nsources: {web: {}}\n")
    with pytest.raises(RecipeError, match="not valid YAML"):
        load_recipe(tmp_path / "evil.yaml")
    assert yaml.safe_load("a: 1") == {"a": 1}
