"""On-policy distillation: the 4-bit student trains a few steps from a teacher and logs TRL's metrics; a
teacher that is missing, comes later in the pipeline, or speaks another vocabulary stops the run before
any weights load, with one line naming distill.teacher.

In this process (tests/conftest.py: train_in_process), as tests/engine/test_techniques.py."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.conftest import DEMO_DATA, TINY_MODEL, train_in_process

pytestmark = pytest.mark.slow


def distill_preset(tmp_path: Path, teacher: str, steps: int = 2) -> Path:
    """A single distill stage on the tiny model, cut to seconds: 2 prompts a step, 6-token answers."""
    path = tmp_path / "distill.toml"
    path.write_text(f"""
[model]
name_or_path = "{TINY_MODEL}"
[data]
path = "{DEMO_DATA / 'grpo.jsonl'}"
eval_fraction = 0
max_rows = 16
[train]
technique = "distill"
max_steps = {steps}
micro_batch_size = 2
learning_rate = 1e-3
logging_steps = 1
save_steps = 100
[distill]
teacher = "{teacher}"
max_completion_length = 6
""")
    return path


def failure(run) -> str:
    failed = run.of_type("run_failed")
    return failed[0].message if failed else ""


def test_distillation_trains_the_4bit_student_from_a_teacher_and_logs_its_metrics(tmp_path):
    # The teacher is the tiny model itself in full precision (plain on the CPU); the student is its 4-bit
    # copy with a fresh LoRA, so the two already differ by the quantization and the divergence is real.
    run = train_in_process(distill_preset(tmp_path, str(TINY_MODEL)), tmp_path)
    assert run.exit_code == 0, failure(run)
    started = run.of_type("run_started")[0]
    assert started.active["4bit"].startswith("on") and "reverse KL" in started.active["loss_on"]
    metrics = [m.values for m in run.of_type("metrics") if "loss" in m.values]
    assert len(metrics) == 2
    for values in metrics:
        for key in ("loss", "entropy", "completions/mean_length", "grad_norm"):
            assert key in values and math.isfinite(values[key]), f"distillation metric {key} missing or not finite"
        assert values["loss"] >= 0 and 0 < values["completions/mean_length"] <= 6
    assert any(m["loss"] > 0 for m in metrics) and any(m["grad_norm"] > 0 for m in metrics)
    assert (run.run_dir / "final" / "adapter_config.json").is_file()


def test_a_missing_teacher_stops_the_run_naming_distill_teacher(tmp_path):
    run = train_in_process(distill_preset(tmp_path, str(tmp_path / "no-such-model")), tmp_path)
    assert run.exit_code == 2
    failed = run.of_type("run_failed")[0]
    assert failed.message.startswith("distill.teacher") and "no such folder" in failed.message
    assert "\n" not in failed.message and failed.hint
    assert not run.of_type("run_started"), "checked before any weights load"


def test_a_teacher_with_another_vocabulary_stops_the_run_naming_distill_teacher(tmp_path, family_model):
    other = family_model("qwen3")  # a tiny random Qwen3: its own tokenizer, its own vocabulary
    run = train_in_process(distill_preset(tmp_path, str(other)), tmp_path)
    assert run.exit_code == 2
    failed = run.of_type("run_failed")[0]
    assert failed.message.startswith("distill.teacher") and "not the student's" in failed.message
    assert "\n" not in failed.message and "same family" in failed.hint
    assert not run.of_type("run_started")


def test_a_teacher_stage_must_run_before_the_distillation(tmp_path):
    preset = tmp_path / "late.toml"
    preset.write_text(f"""
[model]
name_or_path = "{TINY_MODEL}"
[[stages]]
name = "distill"
technique = "distill"
data = {{ path = "{DEMO_DATA / 'grpo.jsonl'}", eval_fraction = 0, max_rows = 8 }}
distill = {{ teacher = "sft" }}
[[stages]]
name = "sft"
technique = "sft"
data = {{ path = "{DEMO_DATA / 'sft.jsonl'}", eval_fraction = 0, max_rows = 8 }}
""")
    run = train_in_process(preset, tmp_path)
    assert run.exit_code == 2
    assert "distill.teacher = 'sft': stage 'sft' does not run before stage 'distill'" in failure(run)


def test_start_from_must_name_an_earlier_policy_stage(tmp_path):
    # demo-distill's student starts from its SFT stage (train.start_from), not from the GRPO teacher before it.
    preset = tmp_path / "start.toml"
    preset.write_text(f"""
[model]
name_or_path = "{TINY_MODEL}"
[[stages]]
name = "sft"
technique = "sft"
data = {{ path = "{DEMO_DATA / 'sft.jsonl'}", eval_fraction = 0, max_rows = 8 }}
[[stages]]
name = "distill"
technique = "distill"
data = {{ path = "{DEMO_DATA / 'grpo.jsonl'}", eval_fraction = 0, max_rows = 8 }}
train = {{ start_from = "grpo" }}
distill = {{ teacher = "sft" }}
""")
    run = train_in_process(preset, tmp_path)
    assert run.exit_code == 2
    assert "train.start_from = 'grpo' (stage distill): not a policy stage that runs before it" in failure(run)
