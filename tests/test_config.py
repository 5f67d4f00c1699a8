"""Config validation: unknown keys and bad values are errors naming the key (and line); overrides win."""

from __future__ import annotations

import pytest

from edgedistill.core.config import Config, default_config_text, load_config, parse_override
from edgedistill.core.errors import ConfigError


def test_embedded_default_is_the_model_default():
    loaded = load_config()
    assert loaded.teacher.model == "packaged:all-MiniLM-L6-v2"
    assert loaded.data.label_names is None  # SST-2's names belong to SST-2 (recognised by its files), not every run
    assert "teacher:" in default_config_text()
    # Every default written in the YAML agrees with the pydantic defaults.
    assert loaded == Config()


def test_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  epochs: 3\ndata:\n  max_length: 32\n")
    loaded = load_config(path, overrides={"teacher.epochs": 0.5, "seed": 1})
    assert (loaded.teacher.epochs, loaded.data.max_length, loaded.seed) == (0.5, 32, 1)


def test_preset_quick_subsamples_train():
    assert load_config(preset="quick").data.max_train_samples == 8000
    with pytest.raises(ConfigError, match="unknown preset 'fast'; the presets are: quick"):
        load_config(preset="fast")


def test_unknown_key_names_key_line_and_suggestion(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("seed: 3\nteacher:\n  epochs: 2\n  learning_rat: 0.1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "c.yaml, line 4: unknown key 'teacher.learning_rat'" in message
    assert "did you mean 'learning_rate'?" in message


def test_bad_value_names_key_and_value(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  train: sometimes\ndata:\n  max_length: -1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "line 2: teacher.train: Input should be 'auto', 'always' or 'never' (got 'sometimes')" in message
    assert "line 4: data.max_length: Input should be greater than or equal to 8 (got -1)" in message


def test_invalid_yaml_gives_line_number(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("teacher:\n  epochs: 2\n   batch_size: 8\n")
    with pytest.raises(ConfigError, match=r"c.yaml: invalid YAML at line 3, column \d+"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file .*nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")


def test_duplicate_label_names_are_refused():
    with pytest.raises(ConfigError, match="label names must be distinct"):
        load_config(overrides={"data.label_names": ["a", "a"]})


def test_parse_override():
    assert parse_override("teacher.epochs=2") == ("teacher.epochs", 2)
    assert parse_override("data.label_names=[a, b]") == ("data.label_names", ["a", "b"])
    assert parse_override("data.max_train_samples=null") == ("data.max_train_samples", None)
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE"):
        parse_override("teacher.epochs")
    with pytest.raises(ConfigError, match="'seed' is not a section of the config"):
        load_config(overrides={"seed.value": 1})
    with pytest.raises(ConfigError, match="unknown key 'teacher.epoch'"):
        load_config(overrides={"teacher.epoch": 1})
