"""The one recipe loader: YAML -> dotted overrides -> pydantic, every error naming the file and the field."""

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlforge.config import ConfigError, apply_overrides, field_errors, load_model, read_yaml


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    timeout: float = Field(default=1.0, gt=0)


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    inner: Inner = Field(default_factory=Inner)


class MyError(ValueError):
    pass


def test_overrides_set_nested_keys_before_validation(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("name: a\ninner:\n  timeout: 2\n")
    recipe = load_model(path, Recipe, {"inner.timeout": 5, "name": "b"})
    assert recipe == Recipe(name="b", inner=Inner(timeout=5))


def test_errors_name_the_file_and_every_field_path(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("inner:\n  timeout: -1\n  extra: 3\n")
    with pytest.raises(MyError) as caught:
        load_model(path, Recipe, error=MyError)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "name: Field required" in message
    assert "inner.timeout: Input should be greater than 0" in message
    assert "inner.extra: Extra inputs are not permitted" in message


def test_bad_files_are_errors_and_an_empty_file_is_all_defaults(tmp_path):
    with pytest.raises(ConfigError, match="--recipe: no such file"):
        read_yaml(tmp_path / "absent.yaml")
    (tmp_path / "bad.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="a recipe is a mapping of keys, got list"):
        read_yaml(tmp_path / "list.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") == {}


def test_without_a_file_the_overrides_alone_are_validated_and_errors_name_only_fields():
    assert load_model(None, Recipe, {"name": "a", "inner.timeout": 3}) == Recipe(name="a", inner=Inner(timeout=3))
    with pytest.raises(ConfigError) as caught:
        load_model(None, Recipe, {"inner.timeout": 0})
    assert str(caught.value) == "name: Field required; inner.timeout: Input should be greater than 0"


def test_base_lies_under_the_yaml_and_the_overrides_and_is_not_changed(tmp_path):
    base = {"name": "preset", "inner": {"timeout": 9}}
    path = tmp_path / "r.yaml"
    path.write_text("inner:\n  timeout: 2\n")
    assert load_model(path, Recipe, base=base) == Recipe(name="preset", inner=Inner(timeout=2))
    assert load_model(path, Recipe, {"inner.timeout": 4}, base=base) == Recipe(name="preset", inner=Inner(timeout=4))
    assert base == {"name": "preset", "inner": {"timeout": 9}}
    with pytest.raises(ConfigError, match=r"r\.yaml: inner\.timeout: Input should be greater than 0"):
        load_model(path, Recipe, {"inner.timeout": -1}, base=base)


def test_field_errors_put_a_prefix_before_every_path():
    with pytest.raises(ValidationError) as caught:
        Recipe.model_validate({"inner": {"timeout": 0}, "extra": 1})
    assert field_errors(caught.value, "outer") == ("outer.name: Field required; "
                                                   "outer.inner.timeout: Input should be greater than 0; "
                                                   "outer.extra: Extra inputs are not permitted")


def test_a_dotted_override_fills_a_null_section_and_refuses_one_that_is_not_a_mapping():
    assert apply_overrides({"inner": None, "name": "a"}, {"inner.timeout": 2}) == {"inner": {"timeout": 2}, "name": "a"}
    with pytest.raises(MyError, match=r"^override inner\.deep\.timeout: inner\.deep is a list, not a mapping$"):
        apply_overrides({"inner": {"deep": [1]}}, {"inner.deep.timeout": 2}, MyError)
