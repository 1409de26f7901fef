"""Run state from events: a pipeline's stages lie end to end; overlays label each run's lines."""

from __future__ import annotations

from smoltrain.rundir import read_events
from smoltrain.runstate import load_state
from smoltrain.tui.series import overlay

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
    assert {line.label.split(":")[0] for line in loss.lines} == {"a", "b"}
