"""A four-stage pipeline runs each stage from the previous policy's merged result and keeps every stage's
output, and its [eval] scores each stage as it finishes. (In this process: tests/conftest.py train_in_process.)"""

from __future__ import annotations

import json

import pytest

from smoltrain.config.presets import PRESETS_DIR
from smoltrain.evalresults import read_results
from smoltrain.rundir import RunDir
from tests.conftest import train_in_process

pytestmark = pytest.mark.slow


def test_demo_pipeline_chains_stages(tmp_path):
    short = [f"stages[{i}].train.max_steps=2" for i in range(4)]
    run = train_in_process(
        PRESETS_DIR / "demo.toml",
        tmp_path,
        [*short, "stages[3].train.micro_batch_size=8", "grpo.max_completion_length=8", "train.eval_steps=2",
         "train.compare_prompts=1", "eval.limit=6", "eval.max_new_tokens=8"]
        + [f"stages[{i}].data.max_rows=64" for i in range(4)],
    )
    assert run.exit_code == 0, [e for e in run.events if e.type == "run_failed"]

    started = [(e.stage, e.technique, e.model) for e in run.of_type("stage_started")]
    assert [s[1] for s in started] == ["sft", "reward", "dpo", "grpo"]
    stages = run.run_dir / "stages"
    # SFT starts from the base; the reward model and DPO from SFT's merged result; GRPO from DPO's.
    assert started[0][2].endswith("tiny-llama")
    assert started[1][2] == started[2][2] == str(stages / "sft" / "merged")
    assert started[3][2] == str(stages / "dpo" / "merged")
    assert not (stages / "reward" / "merged").exists(), "a reward model never becomes the policy"
    assert not (stages / "grpo" / "merged").exists(), "the last stage is not merged"

    for name in ("sft", "reward", "dpo", "grpo"):
        assert (stages / name / "final" / "adapter_model.safetensors").exists()
    final_adapter = json.loads((run.run_dir / "final" / "adapter_config.json").read_text())
    assert final_adapter["base_model_name_or_path"] == str(stages / "dpo" / "merged")

    assert {m.stage for m in run.of_type("metrics")} == {0, 1, 2, 3}
    grpo_metrics = [m.values for m in run.of_type("metrics") if m.stage == 3 and "reward" in m.values]
    assert "rewards/reward_model/mean" in grpo_metrics[-1] and "rewards/math_answer/mean" in grpo_metrics[-1]
    assert run.of_type("run_finished")[0].status == "completed"

    # Before and after, for every policy stage (not the reward model): held-out prompts, greedy answers.
    for index, name in ((0, "sft"), (2, "dpo"), (3, "grpo")):
        pairs = json.loads((run.run_dir / "samples" / f"{name}.json").read_text())
        assert len(pairs) == 1 and all(p["prompt"] and isinstance(p["before"], str) for p in pairs)
        labels = [s.label for s in run.of_type("sample") if s.stage == index and s.label in ("before", "after")]
        assert labels == ["before", "after"]
    assert not (run.run_dir / "samples" / "reward.json").exists()

    # The demo's [eval]: the base and each policy stage answered the same held-out sums, scored by the
    # GRPO reward, each stage's answers judged by the reward stage against the stage before it.
    results = {r.subject: r for r in read_results(RunDir(run.run_dir).eval)}
    assert list(results) == ["base", "sft", "dpo", "grpo"]
    assert all(len(r.tasks["math"].metrics["math_answer"]) == 6 for r in results.values())
    assert [(n, results[n].judge["math"].against) for n in ("sft", "dpo", "grpo")] == [
        ("sft", "base"), ("dpo", "sft"), ("grpo", "dpo")]  # fmt: skip
    assert "base" not in {n for n, r in results.items() if r.judge}
    # Scored as each stage finished (the base with the first), before the run's end.
    marks = [(e.type, e.subject if e.type == "eval_result" else e.stage) for e in run.events
             if e.type in ("stage_started", "eval_result")]  # fmt: skip
    assert marks.index(("eval_result", "base")) < marks.index(("eval_result", "sft")) < marks.index(("stage_started", 1))
