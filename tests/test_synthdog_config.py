"""`vlforge synthdog`'s recipe: the shared loader (file -> flags -> pydantic), one ConfigError, errors by field path."""

import pytest
import yaml

from vlforge import config
from vlforge.cli import build_parser, main
from vlforge.pipelines.synthdog import resolve
from vlforge.synthdog.config import ConfigError, load_config


def _recipe(path, data: dict):
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _resolve(*argv: str):
    return resolve(build_parser().parse_args(["synthdog", *argv]))


def test_synthdog_has_the_one_config_error():
    assert ConfigError is config.ConfigError


def test_a_bad_generator_value_names_the_file_and_the_field_path(tmp_path, capsys):
    path = _recipe(tmp_path / "s.yaml", {"count": 3, "synthdog": {"document": {"content": {"layout": {
        "min_text_px": 0}}}}})
    assert main(["synthdog", "--recipe", str(path), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == (f"vlforge synthdog: error: {path}: "
                                       "synthdog.document.content.layout.min_text_px: "
                                       "Input should be greater than or equal to 1\n")
    assert not (tmp_path / "o").exists()


def test_rule_errors_read_like_every_other_recipe_error():
    with pytest.raises(ConfigError) as caught:  # pydantic's "Value error, " prefix is gone, as in vlforge.config
        load_config({"document": {"noise": {"scale": [5, 1]}}})
    assert str(caught.value) == ("synthdog.document.noise.scale: range must be [low, high] with low <= high, "
                                 "got [5.0, 1.0]")


def test_flags_override_the_recipe_and_size_sets_the_canvas(tmp_path):
    path = _recipe(tmp_path / "s.yaml", {"count": 3, "seed": 4, "size": 512,
                                         "synthdog": {"canvas": {"size": 256, "landscape": 0.25}}})
    recipe = _resolve("--recipe", str(path), "--out", "o", "--seed", "7", "--lang", "zh")
    assert (recipe.count, recipe.seed, recipe.lang, recipe.out) == (3, 7, ["zh"], "o")
    assert (recipe.synthdog.canvas.size, recipe.synthdog.canvas.landscape) == (512, 0.25)  # the shorthand wins
    assert recipe.synthdog.document == load_config({}).document  # untouched sections keep SynthDoG's defaults
    assert _resolve("--recipe", str(path), "--out", "o", "--size", "variable").synthdog.canvas.size is None
    assert _resolve("--out", "o").synthdog.canvas.size == 448


def test_a_run_without_an_output_directory_is_refused(capsys):
    assert main(["synthdog", "--count", "1"]) == 2
    assert capsys.readouterr().err == "vlforge synthdog: error: out: an output directory is required (--out DIR)\n"
