"""Reward modelling, DPO, KTO and GRPO train a few steps of the tiny 4-bit model and log their own metrics.

In this process (tests/conftest.py: train_in_process): the worker process around the engine has its
own tests (test_sft_run.py, test_faults.py, test_resume.py), and each worker start costs CI seconds."""

from __future__ import annotations

import math

import pytest

from smoltrain.config.presets import PRESETS_DIR
from tests.conftest import train_in_process

pytestmark = pytest.mark.slow
QUICK = ["train.max_steps=4", "train.eval_steps=4", "train.logging_steps=1", "train.save_steps=100"]


def worker_log(run) -> str:
    failed = run.of_type("run_failed")
    return failed[0].message if failed else ""


def test_reward_model_logs_pairwise_accuracy(tmp_path):
    run = train_in_process(PRESETS_DIR / "demo-reward.toml", tmp_path, [*QUICK, "data.max_rows=200"])
    assert run.exit_code == 0, worker_log(run)
    assert run.of_type("run_started")[0].active["4bit"].startswith("on")
    evals = run.of_type("eval")
    assert evals and 0.0 <= evals[-1].values["eval_accuracy"] <= 1.0 and "eval_margin" in evals[-1].values
    adapter = run.run_dir / "final" / "adapter_config.json"
    assert '"SEQ_CLS"' in adapter.read_text(), "the reward model is saved as a sequence classifier"


def test_dpo_logs_rewards_and_margins(tmp_path):
    run = train_in_process(PRESETS_DIR / "demo-dpo.toml", tmp_path, [*QUICK, "data.max_rows=200"])
    assert run.exit_code == 0, worker_log(run)
    metrics = [m.values for m in run.of_type("metrics") if "loss" in m.values]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
        assert key in metrics[-1], f"DPO metric {key} missing"
    assert "eval_rewards/accuracies" in run.of_type("eval")[-1].values
    # The reference is the model with adapters off: at the first step policy == reference, margins start at 0.
    assert abs(metrics[0]["rewards/margins"]) < 1e-3


def test_kto_logs_rewards_margins_and_kl(tmp_path):
    run = train_in_process(PRESETS_DIR / "demo-kto.toml", tmp_path, [*QUICK, "data.max_rows=200"])
    assert run.exit_code == 0, worker_log(run)
    assert run.of_type("run_started")[0].active["4bit"].startswith("on")
    metrics = [m.values for m in run.of_type("metrics") if "loss" in m.values]
    for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "kl", "logps/chosen"):
        assert key in metrics[-1], f"KTO metric {key} missing"
    assert "eval_rewards/margins" in run.of_type("eval")[-1].values
    # The reference is the model with adapters off: at the first step policy == reference, rewards start at 0
    # (a micro-batch of one label logs that side's reward only).
    first = [metrics[0][k] for k in ("rewards/chosen", "rewards/rejected") if k in metrics[0]]
    assert first and max(map(abs, first)) < 1e-3 and metrics[0]["kl"] < 1e-3


def test_grpo_logs_each_reward_and_emits_samples(tmp_path):
    # demo-grpo is SFT (to learn the answer format) then GRPO; both cut short here.
    run = train_in_process(
        PRESETS_DIR / "demo-grpo.toml",
        tmp_path,
        ["stages[0].train.max_steps=2", "stages[1].train.max_steps=2", "stages[1].train.micro_batch_size=4",
         "grpo.num_generations=4", "grpo.max_completion_length=8", "stages[0].data.max_rows=32",
         "stages[1].data.max_rows=16"],
    )  # fmt: skip
    assert run.exit_code == 0, worker_log(run)
    assert [s.technique for s in run.of_type("stage_started")] == ["sft", "grpo"]
    last = [m.values for m in run.of_type("metrics") if "reward" in m.values][-1]
    assert "rewards/math_answer/mean" in last and math.isfinite(last["reward_std"])
    samples = run.of_type("sample")
    assert {s.label for s in samples} == {"best", "worst"}
    assert all(s.completion and "math_answer" in s.rewards for s in samples)


def test_wrong_data_shape_for_a_technique_names_what_is_expected(tmp_path):
    run = train_in_process(PRESETS_DIR / "demo-dpo.toml", tmp_path, [f"data.path={PRESETS_DIR.parent / 'assets/data/sft.jsonl'}"])
    assert run.exit_code == 2
    failed = run.of_type("run_failed")[0]
    assert "dpo needs preference pairs" in failed.message and "found columns: messages" in failed.message
