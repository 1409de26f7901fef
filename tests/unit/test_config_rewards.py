"""GRPO's reward entries: an option that cannot work (a pattern that does not compile) is a preset error naming its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from smoltrain.cli import main
from smoltrain.config.load import validate_config
from smoltrain.errors import ConfigError

GRPO = {"model": {"name_or_path": "org/model"}, "data": {"path": "org/dataset"}, "train": {"technique": "grpo"}}


def grpo_with(*rewards: dict) -> dict:
    return {**GRPO, "grpo": {"rewards": list(rewards)}}


def test_a_format_pattern_that_does_not_compile_names_its_key():
    with pytest.raises(ConfigError) as caught:
        validate_config(grpo_with({"name": "json"}, {"name": "format", "pattern": "("}), source="p.toml")
    assert "grpo.rewards[1].pattern: not a valid regular expression: missing ), unterminated subpattern" in caught.value.message


def test_a_compiling_pattern_is_kept_as_written():
    cfg = validate_config(grpo_with({"name": "format", "pattern": r"(?s).*#### *\d+"}), source="p.toml")
    assert cfg.grpo.rewards[0].pattern == r"(?s).*#### *\d+"


def test_smoltrain_validate_refuses_the_pattern(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    preset = tmp_path / "p.toml"
    preset.write_text('[model]\nname_or_path = "org/model"\n[data]\npath = "org/dataset"\n[train]\ntechnique = "grpo"\n'
                      '[[grpo.rewards]]\nname = "format"\npattern = "("\n', encoding="utf-8")  # fmt: skip
    assert main(["validate", str(preset)]) == 2
    assert "grpo.rewards[0].pattern: not a valid regular expression" in capsys.readouterr().err
