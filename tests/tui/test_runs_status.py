"""A run's status on the home screen follows its latest session and whether a worker trains it now."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from smoltrain.engine.events import Metrics, RunFinished, RunStarted
from smoltrain.rundir import EventWriter, RunDir, read_events, running_worker
from smoltrain.tui.runs import run_status


def _run(run_dir: Path, *sessions: tuple[range, str | None]) -> tuple[Path, list]:
    """An events file with one session per (steps, how it ended: None if it never did); its events."""
    emit = EventWriter(run_dir / "events.jsonl")
    for steps, end in sessions:
        emit(RunStarted(run_dir=str(run_dir), name="r", model="m", device="cpu", dtype="float32", stages=["sft"],
                        active={}, trainable_params=1, total_params=2))  # fmt: skip
        for step in steps:
            emit(Metrics(step=step, max_steps=20, loss=1.0))
        if end:
            emit(RunFinished(status=end, step=steps[-1], final_dir=None, duration_s=1.0))
    emit.close()
    return run_dir, read_events(run_dir / "events.jsonl")


@pytest.fixture
def fake_worker(tmp_path: Path):
    """A live process holding the run's worker lock, as the worker does."""
    code = "import sys, time; from pathlib import Path; from smoltrain.rundir import RunDir, WorkerLock; " \
           "WorkerLock(RunDir(Path(sys.argv[1]))).acquire(); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)])
    deadline = time.time() + 20
    while running_worker(tmp_path) is None and time.time() < deadline:
        time.sleep(0.05)  # until the child holds the lock
    yield proc
    proc.kill()
    proc.wait()


def test_a_stopped_run_is_stopped_and_a_killed_resume_is_interrupted(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    run_dir, events = _run(tmp_path / "a", (range(1, 6), "stopped"))
    assert run_status(events, run_dir) == "stopped"
    run_dir, events = _run(tmp_path / "b", (range(1, 6), "stopped"), (range(6, 9), None))
    assert run_status(events, run_dir) == "interrupted"  # the resumed session never ended


def test_a_resumed_run_that_trains_now_is_running(tmp_path, fake_worker):
    run_dir, events = _run(tmp_path, (range(1, 6), "stopped"), (range(6, 9), None))
    assert running_worker(run_dir) == fake_worker.pid
    assert run_status(events, run_dir) == "running"


def test_a_live_pid_without_the_lock_is_not_a_worker(tmp_path):
    """A pid file outlives its worker, and pids are reused: only the lock says a worker lives."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        RunDir(tmp_path).worker_pid.write_text(str(other.pid))
        RunDir(tmp_path).lock.touch()
        assert running_worker(tmp_path) is None
    finally:
        other.kill()
        other.wait()
