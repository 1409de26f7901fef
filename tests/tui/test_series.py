"""Run state from events: a pipeline's stages lie end to end; overlays label each run's lines."""

from __future__ import annotations

from smoltrain.rundir import read_events
from smoltrain.runstate import load_state
from smoltrain.tui.series import overlay, panels

from .conftest import DATA


def test_pipeline_curves_continue_across_stages():
    state = load_state(read_events(DATA / "grpo-pipeline.events.jsonl"))
    xs = [x for x, _ in state.series["train:loss"]]
    assert xs == sorted(xs) and xs[-1] == 30  # 20 SFT steps, then 10 GRPO steps
    assert state.finished is not None and state.finished.status == "completed"
    assert {s.label for s in state.samples} == {"best", "worst"}


def test_overlay_names_both_runs():
    a = load_state(read_events(DATA / "grpo-pipeline.events.jsonl"), name="a")
    b = load_state(read_events(DATA / "dpo-partial.events.jsonl"), name="b")
    loss = next(p for p in overlay(a, b) if p.title == "loss")
    assert {line.run for line in loss.lines} == {"a", "b"}


def _pipeline_loss():
    state = load_state(read_events(DATA / "grpo-pipeline.events.jsonl"))
    return next(p for p in panels(state) if p.title == "loss")


def test_a_pipelines_loss_is_one_line_per_stage_with_its_boundaries_marked():
    """Issue 14, defect 10: SFT's and GRPO's losses were one line on one axis with no stage boundary."""
    loss = _pipeline_loss()
    assert loss.stages == ["1 sft", "2 grpo"]
    assert [(line.stage, line.xs[0], line.xs[-1]) for line in loss.lines] == [("1 sft", 1, 20), ("2 grpo", 21, 30)]
    assert ("stage", 20.0, "2 grpo") in {(m.kind, m.x, m.label) for m in loss.markers}
    assert [m.x for m in loss.markers if m.kind == "checkpoint"] == [20.0, 30.0]


def test_one_stage_on_its_own_reads_in_its_own_steps():
    grpo = _pipeline_loss().only("2 grpo")
    assert [(line.stage, line.xs[0], line.xs[-1]) for line in grpo.lines] == [("2 grpo", 1, 10)]
    assert [(m.kind, m.x) for m in grpo.markers] == [("checkpoint", 10.0)]


def test_overlay_of_three_runs_keeps_each_runs_lines_apart():
    states = [load_state(read_events(DATA / f"{r}.events.jsonl"), name=n)
              for r, n in [("grpo-pipeline", "a"), ("dpo-partial", "b"), ("dpo-partial", "c")]]  # fmt: skip
    loss = next(p for p in overlay(*states) if p.title == "loss")
    assert [line.run for line in loss.lines if line.label == "train"] == ["a", "a", "b", "c"]
