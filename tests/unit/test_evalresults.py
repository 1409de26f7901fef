"""Evaluation results: intervals a user can trust, the paired change between stages, the regression
warning that names the stage and the task, and the files front ends read without torch."""

from __future__ import annotations

import math
import random

from smoltrain.evalresults import (
    JudgeScores,
    SubjectResults,
    TaskScores,
    estimate,
    judge_regressions,
    paired_difference,
    read_results,
    regressions,
    render,
    write_subject,
)


def _subject(name: str, technique: str, order: int, right: list[float], **extra) -> SubjectResults:
    return SubjectResults(name, technique, f"model of {name}", order,
                          {"math": TaskScores("prompts", {"math_answer": right}, {"math_answer": True})}, **extra)


def test_an_interval_covers_the_true_rate_about_95_times_in_100():
    rng = random.Random(0)
    covered = 0
    for _ in range(400):
        est = estimate([float(rng.random() < 0.3) for _ in range(200)])
        covered += est.low <= 0.3 <= est.high
    assert 0.92 <= covered / 400 <= 0.98


def test_estimate_skips_items_the_metric_does_not_apply_to():
    est = estimate([1.0, None, 0.0, None, 1.0, float("nan")])
    assert est.n == 3 and math.isclose(est.mean, 2 / 3)
    assert estimate([]).n == 0 and estimate([None]).render() == "-"


def test_the_paired_change_is_tighter_than_the_two_intervals_side_by_side():
    rng = random.Random(1)
    earlier = [float(rng.random() < 0.6) for _ in range(200)]
    later = [1.0 if x else float(rng.random() < 0.2) for x in earlier]  # the same items, a few more right
    change = paired_difference(later, earlier)
    assert change.mean > 0 and change.low > 0, "a real gain on the same items is seen as one"
    assert change.half_width < estimate(later).half_width + estimate(earlier).half_width


def test_a_stage_that_made_the_model_worse_is_named_with_the_task_and_the_remedy():
    base = _subject("base", "base", 0, [0.0] * 198 + [1.0, 1.0])
    sft = _subject("sft", "sft", 1, [1.0] * 176 + [0.0] * 24)
    dpo = _subject("dpo", "dpo", 2, [1.0] * 78 + [0.0] * 122)
    grpo = _subject("grpo", "grpo", 3, [1.0] * 80 + [0.0] * 120)  # no worse than dpo: no warning
    found = regressions([base, sft, dpo, grpo])
    assert [(r.subject, r.against, r.task, r.metric) for r in found] == [("dpo", "sft", "math", "math_answer")]
    assert "stage dpo" in found[0].message and "math" in found[0].message
    assert "train.learning_rate" in found[0].hint and "dpo.beta" in found[0].hint
    lines = render([base, sft, dpo, grpo])
    assert any(line.split()[0] == "dpo" and "WORSE" in line and "vs sft" in line for line in lines)
    assert any(line.split()[0] == "sft" and "better" in line for line in lines)


def test_a_change_within_the_interval_is_no_regression():
    rng = random.Random(2)
    sft = _subject("sft", "sft", 1, [float(rng.random() < 0.8) for _ in range(50)])
    dpo = _subject("dpo", "dpo", 2, [x if i % 25 else 0.0 for i, x in enumerate(sft.tasks["math"].metrics["math_answer"])])
    assert regressions([sft, dpo]) == []


def test_lower_is_better_metrics_regress_upwards():
    a = SubjectResults("sft", "sft", "", 1, {"ppl": TaskScores("harness", {"perplexity": [3.0] * 50}, {"perplexity": False})})
    b = SubjectResults("dpo", "dpo", "", 2, {"ppl": TaskScores("harness", {"perplexity": [4.0] * 49 + [3.5]}, {"perplexity": False})})
    assert [r.subject for r in regressions([a, b])] == ["dpo"]


def test_a_judge_preferring_the_earlier_answers_is_a_regression():
    sft = _subject("sft", "sft", 1, [1.0] * 10)
    dpo = _subject("dpo", "dpo", 2, [1.0] * 10, judge={"math": JudgeScores("reward", "sft", [0.0] * 150 + [1.0] * 50)})
    rows = judge_regressions([sft, dpo])
    assert [(r.subject, r.against) for r in rows] == [("dpo", "sft")]
    assert 0.18 < rows[0].win_rate.mean < 0.32


def test_results_round_trip_through_the_folder_in_pipeline_order(tmp_path):
    write_subject(tmp_path, _subject("grpo", "grpo", 3, [1.0, 0.0]))
    write_subject(tmp_path, _subject("base", "base", 0, [0.0, 0.0]))
    (tmp_path / "broken.json").write_text("{not json")
    results = read_results(tmp_path)
    assert [r.subject for r in results] == ["base", "grpo"]
    assert results[1].tasks["math"].metrics["math_answer"] == [1.0, 0.0]


def test_scoring_another_task_later_keeps_the_earlier_ones(tmp_path):
    write_subject(tmp_path, _subject("sft", "sft", 1, [1.0, 0.0]))
    later = SubjectResults("sft", "sft", "", 1, {"gsm8k": TaskScores("harness", {"exact_match": [0.0]})})
    write_subject(tmp_path, later)
    assert set(read_results(tmp_path)[0].tasks) == {"math", "gsm8k"}
