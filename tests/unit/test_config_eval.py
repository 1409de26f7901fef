"""The [eval] section: a stage it names must be one of the run's, of the right kind, and a task has one
source; each mistake is named by its key. Paths in it are read from the preset's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from smoltrain.config.load import load_config
from smoltrain.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
DEMO = (ROOT / "presets" / "demo.toml").read_text()


def _preset(tmp_path: Path, eval_section: str) -> Path:
    text = DEMO.split("\n[eval]")[0].replace('"../assets/', f'"{ROOT}/assets/')
    path = tmp_path / "p.toml"
    path.write_text(text + "\n" + eval_section)
    return path


def test_the_demo_evaluates_every_policy_stage_with_its_reward_model_as_judge():
    cfg = load_config(ROOT / "presets" / "demo.toml")
    assert cfg.eval is not None and cfg.eval.stages is None and cfg.eval.judge.reward_model == "reward"
    assert Path(cfg.eval.tasks[0].prompts).is_absolute() and Path(cfg.eval.tasks[0].prompts).is_file()


def test_stages_that_are_not_policies_or_not_there_are_named(tmp_path):
    path = _preset(tmp_path, '[eval]\nstages = ["sft", "reward", "nope"]\n[[eval.tasks]]\nprompts = "x.jsonl"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    text = err.value.render()
    assert "eval.stages[1]: 'reward' is a reward stage" in text and "eval.stages[2]: 'nope' is not a stage" in text


def test_a_judge_that_is_a_policy_stage_is_refused(tmp_path):
    path = _preset(tmp_path, '[eval]\n[[eval.tasks]]\nprompts = "x.jsonl"\n[eval.judge]\nreward_model = "dpo"\n')
    with pytest.raises(ConfigError, match="eval.judge.reward_model: 'dpo' is a dpo stage, not a reward model"):
        load_config(path)


@pytest.mark.parametrize("task", ['harness = "gsm8k"\nprompts = "x.jsonl"', 'name = "t"',
                                  'harness = "gsm8k"\nrewards = [{ name = "math_answer" }]'])  # fmt: skip
def test_a_task_has_exactly_one_source(tmp_path, task):
    with pytest.raises(ConfigError, match=r"eval\.tasks\[0\]"):
        load_config(_preset(tmp_path, f"[eval]\n[[eval.tasks]]\n{task}\n"))


def test_a_judge_model_prompt_must_show_both_answers(tmp_path):
    path = _preset(tmp_path, '[eval]\n[[eval.tasks]]\nprompts = "x.jsonl"\n[eval.judge]\nmodel = "m"\nprompt = "{question} {a}"\n')
    with pytest.raises(ConfigError, match=r"\{question\}, \{a\} and \{b\}"):
        load_config(path)


def test_several_samples_need_a_temperature_and_a_prompts_task(tmp_path):
    path = _preset(tmp_path, '[eval]\n[[eval.tasks]]\nprompts = "x.jsonl"\nsamples = 4\n')
    with pytest.raises(ConfigError, match=r"eval\.tasks\[0\]: samples = 4 with temperature 0.*set temperature"):
        load_config(path)
    path = _preset(tmp_path, '[eval]\n[[eval.tasks]]\nharness = "gsm8k"\ntemperature = 1.0\n')
    with pytest.raises(ConfigError, match="samples and temperature apply to prompts tasks"):
        load_config(path)
    path = _preset(tmp_path, '[eval]\n[[eval.tasks]]\nprompts = "x.jsonl"\nsamples = 4\ntemperature = 1.0\n')
    assert load_config(path).eval.tasks[0].samples == 4
