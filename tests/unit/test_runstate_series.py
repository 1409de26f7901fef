"""The run state's curves: each pipeline stage's points kept apart, and the marks a plot draws on its
step axis (stage starts, checkpoints, stops, resumes). Issue 14, defect 10."""

from __future__ import annotations

from pathlib import Path

from smoltrain.engine.events import Checkpoint, Metrics, RunFinished, RunStarted, StageStarted
from smoltrain.rundir import read_events
from smoltrain.runstate import RunState, load_state

DATA = Path(__file__).parents[1] / "tui" / "data"


def _pipeline() -> RunState:
    return load_state(read_events(DATA / "grpo-pipeline.events.jsonl"))


def test_each_stage_keeps_its_own_points():
    state = _pipeline()
    assert state.stage_starts == {0: 0.0, 1: 20.0}
    sft, grpo = (state.stage_series[i]["train:loss"] for i in (0, 1))
    assert [x for x, _ in sft][-1] == 20 and [x for x, _ in grpo][0] == 21  # no point belongs to both


def test_stage_starts_and_checkpoints_are_marked():
    marks = [(m.kind, m.x, m.label) for m in _pipeline().marks]
    assert ("stage", 0.0, "1 sft") in marks and ("stage", 20.0, "2 grpo") in marks
    assert [x for kind, x, _ in marks if kind == "checkpoint"] == [20.0, 30.0]


def _started(stages: list[str], resumed_from: str | None = None) -> RunStarted:
    return RunStarted(run_dir="r", name="r", model="m", device="cpu", dtype="float32", stages=stages, active={},
                      trainable_params=1, total_params=2, resumed_from=resumed_from)  # fmt: skip


def _stage(index: int, technique: str) -> StageStarted:
    return StageStarted(stage=index, technique=technique, max_steps=10, train_rows=1, eval_rows=0, data="")


def _loss(step: int, stage: int) -> Metrics:
    return Metrics(step=step, max_steps=10, stage=stage, loss=1.0 / step)  # type: ignore[call-arg]


def test_a_stop_and_a_resume_are_marked_and_the_resumed_stage_keeps_its_place():
    """Stage 2 of a pipeline stopped at step 6 and resumed from its checkpoint at step 4: the resumed
    steps replace the ones done after that checkpoint, at the same place on the axis."""
    events = [_started(["sft", "grpo"]), _stage(0, "sft"), *(_loss(s, 0) for s in range(1, 11)), _stage(1, "grpo"),
              *(_loss(s, 1) for s in range(1, 7)), Checkpoint(step=4, stage=1, path="r/checkpoint-4"),
              RunFinished(status="stopped", step=6, duration_s=1.0),
              _started(["sft", "grpo"], resumed_from="r/stages/grpo/checkpoints/checkpoint-4"), _stage(1, "grpo"),
              *(_loss(s, 1) for s in range(5, 11))]  # fmt: skip
    state = load_state(events)
    assert state.stage_starts == {0: 0.0, 1: 10.0}
    marks = {(m.kind, m.x) for m in state.marks}
    assert {("checkpoint", 14.0), ("stopped", 16.0), ("resumed", 14.0)} <= marks
    xs = [x for x, _ in state.stage_series[1]["train:loss"]]
    assert xs == [float(x) for x in range(11, 21)]
