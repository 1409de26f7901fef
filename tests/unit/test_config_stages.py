"""Technique sections and pipelines: GRPO misconfigurations are caught before training; stages merge and validate."""

from __future__ import annotations

from pathlib import Path

import pytest

from smoltrain.config.load import load_config, stage_configs
from smoltrain.errors import ConfigError

GRPO = """
[model]
name_or_path = "org/model"
[data]
path = "org/prompts"
[train]
technique = "grpo"
micro_batch_size = 4
grad_accum = 2
[grpo]
num_generations = 4
"""
REWARD = '[[grpo.rewards]]\nname = "math_answer"\n'

PIPELINE = """
[model]
name_or_path = "org/model"
[train]
max_steps = 10
learning_rate = 1e-4
[[stages]]
technique = "sft"
data = { path = "sft.jsonl", eval_fraction = 0.1 }
[[stages]]
name = "rm"
technique = "reward"
data = { path = "pairs.jsonl" }
train = { learning_rate = 5e-5 }
[[stages]]
technique = "grpo"
data = { path = "prompts.jsonl" }
train = { micro_batch_size = 4, grad_accum = 1 }
[stages.grpo]
num_generations = 4
[[stages.grpo.rewards]]
name = "reward_model"
model = "rm"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text)
    return path


def test_grpo_without_a_reward_is_caught(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GRPO))
    assert "at least one reward" in err.value.message and "[[grpo.rewards]]" in err.value.message


def test_grpo_batch_must_divide_by_num_generations(tmp_path):
    with pytest.raises(ConfigError, match=r"multiple of grpo.num_generations \(3\)"):
        load_config(write(tmp_path, GRPO + REWARD), ["grpo.num_generations=3"])


@pytest.mark.parametrize(
    ("reward", "needs"),
    [("format", "pattern"), ("length", "max_chars"), ("reward_model", "model"), ("python", "path and function")],
)
def test_reward_options_are_required(tmp_path, reward, needs):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GRPO + f'[[grpo.rewards]]\nname = "{reward}"\n'))
    assert "grpo.rewards[0]" in err.value.message and needs in err.value.message


def test_unknown_reward_name_lists_choices(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, GRPO + '[[grpo.rewards]]\nname = "vibes"\n'))
    assert "grpo.rewards[0].name" in err.value.message and "math_answer" in err.value.message


def test_grpo_config_loads(tmp_path):
    cfg = load_config(write(tmp_path, GRPO + REWARD + '[[grpo.rewards]]\nname = "format"\npattern = "#### \\\\d+"\nweight = 0.2\n'))
    assert [(r.name, r.weight) for r in cfg.grpo.rewards] == [("math_answer", 1.0), ("format", 0.2)]


def test_pipeline_stages_merge_over_the_top_level(tmp_path):
    cfg = load_config(write(tmp_path, PIPELINE))
    stages = dict(stage_configs(cfg))
    assert list(stages) == ["1-sft", "rm", "3-grpo"]
    assert [s.train.technique for s in stages.values()] == ["sft", "reward", "grpo"]
    assert stages["1-sft"].train.learning_rate == 1e-4 and stages["rm"].train.learning_rate == 5e-5
    assert all(s.train.max_steps == 10 for s in stages.values()), "top-level [train] is inherited"
    assert stages["1-sft"].data.eval_fraction == 0.1 and stages["rm"].data.eval_fraction == 0.05
    assert stages["3-grpo"].grpo.rewards[0].model == "rm"


def test_a_bad_stage_is_named(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, PIPELINE.replace("train = { learning_rate = 5e-5 }", "train = { lerning_rate = 5e-5 }")))
    assert "stages[1].train.lerning_rate" in err.value.message
    assert "stages[1].train.learning_rate" in err.value.hint


def test_a_stage_without_data_is_caught(tmp_path):
    with pytest.raises(ConfigError, match=r"stages\[2\].*missing required key data"):
        load_config(write(tmp_path, PIPELINE.replace('data = { path = "prompts.jsonl" }\n', "")))


def test_a_stage_inherits_grpo_checks(tmp_path):
    with pytest.raises(ConfigError, match=r"stages\[2\].*num_generations"):
        load_config(write(tmp_path, PIPELINE.replace("num_generations = 4", "num_generations = 3")))


def test_duplicate_stage_names(tmp_path):
    text = PIPELINE.replace('name = "rm"', 'name = "1-sft"')
    with pytest.raises(ConfigError, match="used by an earlier stage"):
        load_config(write(tmp_path, text))
