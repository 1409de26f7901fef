"""The worker's own bookkeeping, without training: how a run stopped at once (a second Ctrl-C) ends."""

from __future__ import annotations

import time

from smoltrain.engine.events import EventWriter, Metrics, RunFinished, RunStarted, read_events
from smoltrain.engine.worker import _stopped_at_once


def _started(name: str) -> RunStarted:
    return RunStarted(run_dir="r", name=name, model="m", device="cpu", dtype="float32", stages=["sft"], active={},
                      trainable_params=1, total_params=2)  # fmt: skip


def test_a_run_stopped_at_once_ends_at_its_last_logged_step_of_this_session(tmp_path):
    emit = EventWriter(tmp_path / "events.jsonl")
    emit(_started("first session"))
    for step in range(1, 6):
        emit(Metrics(step=step, max_steps=12, loss=1.0))
    emit(RunFinished(status="stopped", step=5, final_dir=None, duration_s=1.0))
    resumed = _started("resumed")
    emit(resumed)
    for step in range(6, 9):
        emit(Metrics(step=step, max_steps=12, loss=0.5))
    emit.close()
    end = _stopped_at_once(tmp_path)
    assert end.status == "stopped" and end.step == 8 and end.final_dir is None
    assert 0 <= end.duration_s <= time.time() - resumed.time + 1  # timed from this session's start
    emit = EventWriter(tmp_path / "events.jsonl")
    emit(end)  # the front ends must be able to read it back
    emit.close()
    assert read_events(tmp_path / "events.jsonl")[-1] == end
