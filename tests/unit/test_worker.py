"""The worker's own bookkeeping, without training: how a run stopped at once (a second Ctrl-C) ends."""

from __future__ import annotations

import json
import time

import pytest

from smoltrain.engine.checkpoints import mark_complete
from smoltrain.engine.events import Metrics, RunFinished, RunStarted, StageStarted
from smoltrain.engine.worker import _stopped_at_once
from smoltrain.rundir import EventWriter, RunDir, read_events


def _started(name: str) -> RunStarted:
    return RunStarted(run_dir="r", name=name, model="m", device="cpu", dtype="float32", stages=["sft"], active={},
                      trainable_params=1, total_params=2)  # fmt: skip


def _checkpoint(folder, step: int, complete: bool = True) -> None:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "trainer_state.json").write_text(json.dumps({"global_step": step, "max_steps": 12}))
    if complete:
        mark_complete(path)


def test_a_run_stopped_at_once_reports_its_last_complete_checkpoint(tmp_path):
    """Step 8 was reached, but the last complete checkpoint is step 5 (step 7's was cut off): a resume
    continues from 5, so 5 is what the user is told, along with the step it stopped at."""
    run = RunDir(tmp_path)
    emit = EventWriter(run.events)
    emit(_started("first session"))
    for step in range(1, 4):
        emit(Metrics(step=step, max_steps=12, loss=1.0))
    emit(RunFinished(status="stopped", step=3, final_dir=None, duration_s=1.0))
    resumed = _started("resumed")
    emit(resumed)
    emit(StageStarted(stage=0, technique="sft", max_steps=12, train_rows=9, eval_rows=0, data="9 rows"))
    for step in range(4, 9):
        emit(Metrics(step=step, max_steps=12, loss=0.5))
    emit.close()
    _checkpoint(run.stage(None).checkpoints, 5)
    _checkpoint(run.stage(None).checkpoints, 7, complete=False)
    end = _stopped_at_once(run)
    assert end.status == "stopped" and end.step == 5 and end.stopped_at == 8 and end.final_dir is None
    assert 0 <= end.duration_s <= time.time() - resumed.time + 1  # timed from this session's start
    emit = EventWriter(run.events)
    emit(end)  # the front ends must be able to read it back
    emit.close()
    assert read_events(run.events)[-1] == end


def test_library_warnings_become_events_once_each(tmp_path):
    """TRL's and transformers' own warnings reach the user where they watch the run, deduplicated."""
    import logging
    import warnings

    from smoltrain.engine.library_warnings import LibraryWarnings

    said: list = []
    hook = LibraryWarnings(said.append)
    hook.install()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            for _ in range(3):
                warnings.warn("`gradient_checkpointing_enable` is deprecated", FutureWarning, stacklevel=1)
        for answer in range(2):
            logging.getLogger("trl.trainer.grpo_trainer").warning(
                f"All reward functions returned None for the following kwargs: {{'answer': {answer}}}")
        logging.getLogger("trl.trainer").info("not a warning")
        logging.getLogger("elsewhere").warning("not a library of ours")
    finally:
        hook.uninstall()
    assert [w.message for w in said] == [
        "test_worker.py: FutureWarning: `gradient_checkpointing_enable` is deprecated",
        "trl: All reward functions returned None for the following kwargs: {'answer': 0}",
    ]


def test_stop_at_once_on_rank_0_of_several_asks_the_launcher_to_stop_every_rank(monkeypatch):
    """The other ranks may be waiting on rank 0 in a collective: a second request must reach them through the
    launcher (rank 0's parent), not leave them hanging. One process stops at once alone, as before."""
    import os
    import signal

    from smoltrain.engine import worker
    from smoltrain.engine.control import StopFlag

    sent: list[tuple[int, int]] = []
    monkeypatch.setattr(os, "kill", lambda pid, sig: sent.append((pid, sig)))
    handlers: dict[int, object] = {}
    monkeypatch.setattr(signal, "signal", lambda sig, handler: handlers.setdefault(sig, handler))
    for world, expected in (("1", []), ("2", [(os.getppid(), signal.SIGTERM)])):
        monkeypatch.setenv("WORLD_SIZE", world)
        monkeypatch.setenv("RANK", "0")
        handlers.clear()
        sent.clear()
        stop, said = StopFlag(), []
        worker._install_stop_handlers(stop, said.append)
        handle = handlers[signal.SIGINT]
        handle(signal.SIGINT, None)  # type: ignore[operator]
        assert stop.requested and sent == [] and len(said) == 1
        with pytest.raises(KeyboardInterrupt):
            handle(signal.SIGINT, None)  # type: ignore[operator]
        assert sent == expected
