"""Evaluation of a real pipeline: the demo as it was before evaluation came (its DPO stage made the
model worse at sums while meeting its own metrics) is trained once, its [eval] section scores the
base and each stage on 200 held-out sums, and the regression is named (the judge is checked by the
demo pipeline's test, test_pipeline.py). `smoltrain eval` then scores
it again from the run folder (lm-evaluation-harness on a local task YAML gives the same per-item
verdicts as the run's own math_answer reward), and bad input is one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from smoltrain import cli
from smoltrain.evalresults import read_results, regressions
from smoltrain.rundir import RunDir
from tests.conftest import train_in_process

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BEFORE_EVAL = ROOT / "tests" / "data" / "eval" / "demo_before_eval.toml"
MATH_SYSTEM = "Solve the problem. Show the equation, then give the final answer after ####."


@pytest.fixture(scope="module")
def todays_demo(tmp_path_factory):
    # Without gradient checkpointing: the same weights (recomputation restores the dropout RNG), a
    # quarter less compute on CPU.
    run = train_in_process(BEFORE_EVAL, tmp_path_factory.mktemp("before-eval"), ["train.gradient_checkpointing=false"])
    assert run.exit_code == 0, [e for e in run.events if e.type == "run_failed"]
    return run


def test_the_dpo_stage_that_made_the_model_worse_is_named(todays_demo):
    results = {r.subject: r for r in read_results(RunDir(todays_demo.run_dir).eval)}
    assert list(results) == ["base", "sft", "dpo"]
    mean = {name: sum(r.tasks["math"].metrics["math_answer"]) / 200 for name, r in results.items()}
    assert mean["base"] < 0.1 < 0.6 < mean["sft"], mean
    assert mean["dpo"] < mean["sft"] - 0.15, mean
    # DPO met its own target while doing so: the number a user watched said all was well.
    dpo_evals = [e.values for e in todays_demo.of_type("eval") if e.stage == 1]
    assert dpo_evals[-1]["eval_rewards/accuracies"] > 0.8

    warnings = [w for w in todays_demo.of_type("warning") if w.message.startswith("eval:")]
    named = [w for w in warnings if "stage dpo" in w.message and "math" in w.message and "below sft" in w.message]
    assert named and "train.learning_rate" in named[0].hint
    assert not any("stage sft" in w.message for w in warnings), "SFT made it better"
    # Each scored model was announced as it finished.
    announced = [e.subject for e in todays_demo.of_type("eval_result")]
    assert {"base", "sft", "dpo"} <= set(announced)


def test_smoltrain_eval_scores_again_with_the_harness_and_agrees_item_by_item(todays_demo, capsys):
    task = ROOT / "assets" / "eval" / "demo_math.yaml"
    code = cli.main(["eval", str(todays_demo.run_dir), "--tasks", str(task), "--system-prompt", MATH_SYSTEM,
                     "--stage", "dpo"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    results = {r.subject: r for r in read_results(RunDir(todays_demo.run_dir).eval)}
    for name in ("base", "dpo"):
        harness = results[name].tasks["demo_math"].metrics["exact_match"]
        own = results[name].tasks["math"].metrics["math_answer"]
        assert harness == own, f"{name}: the harness and the run's reward disagree on the same greedy answers"
    assert "demo_math · exact_match" in out and "math · math_answer" in out, "earlier tasks are kept and shown"
    # Only the asked stage was scored again: sft's file still holds the run's own scores only.
    assert "demo_math" not in results["sft"].tasks


def _one_line_error(capsys, argv: list[str]) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0].startswith("error:") and len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("  hint:")), err
    return err


def test_bad_input_is_one_line_and_exit_2(todays_demo, capsys, tmp_path, monkeypatch):
    run = str(todays_demo.run_dir)
    err = _one_line_error(capsys, ["eval", run, "--tasks", "gsm8kk", "--limit", "2"])
    assert "unknown lm-evaluation-harness task 'gsm8kk'" in err and "gsm8k" in err
    err = _one_line_error(capsys, ["eval", run, "--judge", "sft", "--limit", "2"])
    assert "stage sft trained a sft policy, not a reward model" in err
    not_a_reward_model = RunDir(todays_demo.run_dir).stage("dpo").final
    err = _one_line_error(capsys, ["eval", run, "--judge", str(not_a_reward_model), "--limit", "2"])
    assert "CAUSAL_LM adapter, not a reward model" in err
    err = _one_line_error(capsys, ["eval", run, "--stage", "grpo"])
    assert "no stage of that name" in err and "sft, dpo" in err
    err = _one_line_error(capsys, ["eval", str(ROOT / "assets" / "tiny-llama")])
    assert "needs --tasks" in err
    err = _one_line_error(capsys, ["eval", run, "--tasks", str(tmp_path / "nope.jsonl")])
    assert "nope.jsonl" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    err = _one_line_error(capsys, ["eval", run, "--tasks", "arc_easy", "--limit", "2", "--stage", "sft"])
    assert "arc_easy" in err and "cannot be reached" in err


def test_a_model_on_its_own_is_scored_into_its_own_folder(capsys, tmp_path):
    prompts = tmp_path / "sums.jsonl"
    prompts.write_text("".join(json.dumps({"prompt": f"{a} + {a} = ?", "answer": str(2 * a)}) + "\n" for a in range(6)))
    code = cli.main(["eval", str(ROOT / "assets" / "tiny-llama"), "--tasks", str(prompts), "--rewards", "math_answer",
                     "--out", str(tmp_path / "out")])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    (result,) = read_results(tmp_path / "out")
    assert result.subject == "tiny-llama" and len(result.tasks["sums"].answers) == 6
    assert "sums · math_answer, 6 items" in out
    assert regressions([result]) == []
