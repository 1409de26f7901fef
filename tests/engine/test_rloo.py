"""RLOO (TRL's RLOOTrainer) trains a few steps of the tiny 4-bit model after a short SFT and reward stage,
scored by math_answer and the reward model it just trained: its metrics and samples arrive as events.
Its config mistakes are refused before anything loads, naming the key (exit 2 through the CLI)."""

from __future__ import annotations

import math

import pytest

from smoltrain.cli import main
from smoltrain.config.presets import PRESETS_DIR
from tests.conftest import train_in_process

PRESET = PRESETS_DIR / "demo-rloo.toml"


@pytest.mark.slow
def test_rloo_logs_each_reward_and_the_kl_and_emits_samples(tmp_path):
    run = train_in_process(PRESET, tmp_path, [
        "stages[0].train.max_steps=2", "stages[0].data.max_rows=32", "stages[1].train.max_steps=2",
        "stages[1].data.max_rows=32", "stages[2].train.max_steps=2", "stages[2].train.micro_batch_size=4",
        "stages[2].data.max_rows=16", "rloo.num_generations=4", "rloo.max_completion_length=8",
    ])  # fmt: skip
    failed = run.of_type("run_failed")
    assert run.exit_code == 0, failed[0].message if failed else ""
    assert [s.technique for s in run.of_type("stage_started")] == ["sft", "reward", "rloo"]
    assert run.of_type("run_started")[0].active["4bit"].startswith("on")
    last = [m.values for m in run.of_type("metrics") if m.stage == 2 and "reward" in m.values][-1]
    for key in ("rewards/math_answer/mean", "rewards/reward_model/mean", "reward_std", "kl"):
        assert key in last and math.isfinite(last[key]), f"RLOO metric {key} missing or not finite"
    samples = [s for s in run.of_type("sample") if s.stage == 2]
    assert {s.label for s in samples} == {"best", "worst"}
    assert all("math_answer" in s.rewards and "reward_model" in s.rewards for s in samples)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("rloo.rewards=[]", "rloo needs at least one reward"),
        ("rloo.num_generations=3", "must be a multiple of rloo.num_generations (3)"),
    ],
)
def test_rloo_config_mistakes_exit_2_naming_the_key(override, message, capsys, tmp_path):
    assert main(["validate", str(PRESET), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
