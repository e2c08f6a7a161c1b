"""The training config: stage preset <- YAML <- --shards <- --set, through the one recipe loader."""

import argparse

import pytest
import yaml

from vlforge.config import ConfigError
from vlforge.training.cli_commands import add_train_parser, train_config
from vlforge.training.config import load_config


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vlforge")
    add_train_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["train", "--out", "run", *argv])


def _write(path, data: dict):
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_the_yaml_overrides_the_stage_preset_key_by_key(tmp_path):
    path = _write(tmp_path / "train.yaml", {"optim": {"lr": 1e-3}, "run": {"steps": 7}})
    cfg = load_config(2, path)
    assert (cfg.optim.lr, cfg.optim.min_lr, cfg.optim.warmup_steps) == (1e-3, 1e-5, 400)  # the rest: stage 2's
    assert (cfg.run.steps, cfg.run.global_batch, cfg.run.stage) == (7, 4096, 2)
    assert (cfg.model.train_lm, cfg.data.image_size) == (True, 448)
    assert load_config(2).optim.lr == 5e-5  # the preset itself is untouched


def test_the_command_line_overrides_the_yaml(tmp_path):
    path = _write(tmp_path / "train.yaml", {"optim": {"lr": 1e-3}, "data": {"shards": ["from-yaml"], "seq_len": 64}})
    cfg = train_config(_args("--stage", "1", "--config", str(path), "--shards", "a", "b",
                             "--set", "optim.lr=2e-3", "--set", "data.micro_batch=2", "--epochs", "3"))
    assert [s.pattern for s in cfg.data.shards] == ["a", "b"]
    assert (cfg.optim.lr, cfg.data.seq_len, cfg.data.micro_batch, cfg.data.epochs) == (2e-3, 64, 2, 3)
    assert (cfg.data.image_size, cfg.run.stage) == (224, 1)
    assert [s.pattern for s in train_config(_args("--stage", "1", "--config", str(path))).data.shards] == ["from-yaml"]


def test_errors_name_the_file_and_the_field_path(tmp_path):
    path = _write(tmp_path / "train.yaml", {"optim": {"lr": "fast"}, "run": {"stepz": 3}})
    with pytest.raises(ConfigError) as caught:
        load_config(3, path)
    assert str(caught.value) == (f"{path}: optim.lr: Input should be a valid number, unable to parse string as a "
                                 "number; run.stepz: Extra inputs are not permitted")
    good = _write(tmp_path / "good.yaml", {"optim": {"lr": 1e-4}})
    with pytest.raises(ConfigError) as caught:  # a bad --set value: still the file's name first
        load_config(3, good, ["data.seq_len=0"])
    assert str(caught.value) == f"{good}: data.seq_len: Input should be greater than 0"


def test_bad_files_and_overrides_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="--config: no such file"):
        load_config(1, tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match=r"override 'optim\.lr' is not KEY\.PATH=VALUE"):
        load_config(1, overrides=["optim.lr"])
    with pytest.raises(ConfigError, match=r"^override data\.shards: data is a list, not a mapping$"):
        load_config(1, _write(tmp_path / "list.yaml", {"data": [1]}), values={"data": {"shards": ["a"]}})
    with pytest.raises(ConfigError, match=r"^optim\.lr: Input should be a valid number"):  # no file: fields only
        load_config(1, overrides=["optim.lr=fast"])
