"""Two training processes on the CPU (gloo), launched the way a 2-GPU user launches them: through
accelerate's own launcher, by the runner (`[distributed] gpus = 2`, what `smoltrain run --gpus 2` sets).

Launches of two processes cost 20-40 s each on two cores, so there are three: an SFT run stopped
through rank 0 and resumed (one events stream, the loss falling, a stop every rank obeys at the same
step, a resume that continues to the same final step, on the same process count only; its first step
is also the one that 1 process x 2 micro-batches makes), and a DPO run through the CLI's --gpus 2.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from smoltrain import runner
from smoltrain.config.load import load_config
from smoltrain.config.presets import PRESETS_DIR
from smoltrain.engine.checkpoints import is_complete, last_complete
from smoltrain.engine.events import Metrics, RunFinished, RunStarted
from smoltrain.errors import ConfigError
from smoltrain.rundir import read_events
from tests.conftest import start_run, train_in_process

pytestmark = pytest.mark.slow

STEPS = 24
SHORT = [f"train.max_steps={STEPS}", "data.eval_fraction=0", "train.save_steps=1000", "train.logging_steps=1",
         "data.max_rows=256", "train.micro_batch_size=4", "lora.dropout=0"]  # fmt: skip


def _losses(events: list) -> dict[int, float]:
    return {e.step: e.values["loss"] for e in events if isinstance(e, Metrics) and "loss" in e.values}


def _metric_steps(events: list) -> Counter:
    return Counter(e.step for e in events if isinstance(e, Metrics) and "loss" in e.values)


def _wait_for_step(handle: runner.RunHandle, step: int, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and handle.process.poll() is None:
        if any(isinstance(e, Metrics) and e.step >= step for e in read_events(handle.events_path)):
            return
        time.sleep(0.1)
    raise AssertionError("the run never got going: " + handle.log_path.read_text()[-3000:])


def _no_traceback(run_dir: Path) -> None:
    log = (run_dir / "worker.log").read_text()
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def stopped_and_resumed(tmp_path_factory):
    """Two processes, stopped mid-run through rank 0 alone, then resumed: (run folder, the stop's events)."""
    preset = PRESETS_DIR / "demo-sft.toml"
    handle = start_run(preset, tmp_path_factory.mktemp("two"), [*SHORT, "distributed.gpus=2"])
    assert handle.processes == 2
    _wait_for_step(handle, 4)
    handle.request_stop()  # SIGINT to rank 0 only: rank 1 learns it from the step-end agreement
    assert handle.wait() == 0, handle.log_path.read_text()[-3000:]
    first = read_events(handle.events_path)
    resumed = runner.start(runner.resume_checks(handle.run_dir), resume=True)
    assert resumed.wait() == 0, resumed.log_path.read_text()[-3000:]
    return handle.run_dir, first


def test_two_processes_stop_together_and_resume_to_the_same_final_step(stopped_and_resumed):
    run_dir, first = stopped_and_resumed
    stopped = [e for e in first if isinstance(e, RunFinished)][-1]
    assert stopped.status == "stopped" and 4 <= stopped.step < STEPS
    checkpoint = run_dir / "checkpoints" / f"checkpoint-{stopped.step}"
    assert is_complete(checkpoint)
    # Both ranks saved their part, at the same step: one RNG state each.
    assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]

    events = read_events(run_dir / "events.jsonl")
    end = [e for e in events if isinstance(e, RunFinished)][-1]
    assert end.status == "completed" and end.step == STEPS
    assert last_complete(run_dir / "checkpoints").name == f"checkpoint-{STEPS}"
    started = [e for e in events if isinstance(e, RunStarted)]
    assert [s.processes for s in started] == [2, 2] and started[-1].effective_batch == 8
    assert started[-1].strategy == "ddp" and "2 processes" in started[-1].active["batch"]

    # One events stream: each step logged once (rank 1 writes none), every step from 1 to the end.
    steps = _metric_steps(events)
    assert max(steps.values()) == 1 and sorted(steps) == list(range(1, STEPS + 1))
    losses = _losses(events)
    first_five = sum(losses[s] for s in range(1, 6)) / 5
    last_five = sum(losses[s] for s in range(STEPS - 4, STEPS + 1)) / 5
    assert last_five < 0.8 * first_five, losses
    _no_traceback(run_dir)


def test_another_process_count_is_refused_on_resume_and_told_which(stopped_and_resumed):
    run_dir, _ = stopped_and_resumed
    with pytest.raises(ConfigError, match="trains on 2 processes") as refused:
        runner.resume_checks(run_dir, gpus=1)
    assert "--gpus 2" in (refused.value.hint or "")


def test_two_processes_of_one_micro_batch_step_like_one_process_of_two(stopped_and_resumed, sft_preset, tmp_path):
    """Same effective batch, same rows in the first step, same first-step loss (TRL's invariant test, batch
    8 x 1 == batch 1 x 8, across processes instead of accumulation): 2 processes x 1 micro-batch of 4 against
    1 process x 2 micro-batches of 4."""
    _, two = stopped_and_resumed
    one = train_in_process(sft_preset, tmp_path, [*SHORT, "train.max_steps=1", "train.grad_accum=2"])
    assert one.exit_code == 0
    runs = {}
    for name, events in (("one", one.events), ("two", two)):
        started = next(e for e in events if isinstance(e, RunStarted))
        runs[name] = (started.effective_batch, started.processes, _losses(events)[1])
    assert runs["one"][:2] == (8, 1) and runs["two"][:2] == (8, 2)
    assert runs["two"][2] == pytest.approx(runs["one"][2], rel=1e-3), runs


def test_dpo_on_two_processes_from_the_command_line(tmp_path):
    preset = PRESETS_DIR / "demo-dpo.toml"
    out = subprocess.run(
        [sys.executable, "-m", "smoltrain", "run", str(preset), "--gpus", "2", "--name", "dpo2",
         "--set", f"output_dir={tmp_path}", "--set", "train.max_steps=8", "--set", "data.eval_fraction=0",
         "--set", "train.logging_steps=1", "--set", "train.save_steps=1000", "--set", "train.compare_prompts=0",
         "--set", "data.max_rows=128", "--set", "train.micro_batch_size=4"],
        capture_output=True, text=True, timeout=400,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "2 processes" in out.stdout
    events = read_events(tmp_path / "dpo2" / "events.jsonl")
    assert [e.status for e in events if isinstance(e, RunFinished)] == ["completed"]
    losses = _losses(events)
    assert sorted(_metric_steps(events).items()) == [(s, 1) for s in range(1, 9)]
    assert sum(losses[s] for s in (6, 7, 8)) / 3 < sum(losses[s] for s in (1, 2, 3)) / 3, losses
    assert (tmp_path / "dpo2" / "final" / "adapter_model.safetensors").is_file()
    _no_traceback(tmp_path / "dpo2")


def test_a_run_asking_for_more_gpus_than_the_machine_has_is_refused(monkeypatch, sft_preset, tmp_path):
    monkeypatch.setattr(runner, "visible_gpus", lambda: 1)
    cfg = load_config(sft_preset, [f"output_dir={tmp_path}", "distributed.gpus=2"])
    with pytest.raises(ConfigError, match="has 1 GPU") as refused:
        runner.start(runner.create_run_dir(cfg, "x"))
    assert "--gpus 1" in (refused.value.hint or "")
