"""Stop, resume and checkpoint completeness, on the bundled tiny model.

The first test goes through the real runner and worker (a real SIGINT); the pipeline test calls
the engine's run() in-process and stops it from the event stream, which is quicker.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from smoltrain import runner
from smoltrain.cli import main
from smoltrain.config.load import load_config
from smoltrain.config.presets import PRESETS_DIR
from smoltrain.engine.checkpoints import MANIFEST, is_complete, last_complete
from smoltrain.engine.events import Metrics
from smoltrain.errors import ConfigError
from smoltrain.rundir import read_events, running_worker
from tests.conftest import start_run

pytestmark = pytest.mark.slow

MAX_STEPS = 12
SHORT = [f"train.max_steps={MAX_STEPS}", "data.eval_fraction=0", "train.save_steps=1000", "train.logging_steps=1",
         "train.compare_prompts=0",
         "data.max_rows=128", "train.micro_batch_size=4"]  # fmt: skip


def _losses(events: list) -> dict[int, float]:
    return {e.step: e.values["loss"] for e in events if isinstance(e, Metrics) and "loss" in e.values}


def _wait_for_step(handle: runner.RunHandle, step: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if any(e.type == "metrics" and e.step >= step for e in read_events(handle.events_path)):
            return
        time.sleep(0.1)
    raise AssertionError("the run never got going: " + (handle.run_dir / "worker.log").read_text()[-2000:])


def _uninterrupted_losses(preset: Path, tmp_path: Path) -> dict[int, float]:
    """The same run without a stop, in-process (quicker than another worker)."""
    from smoltrain.engine.control import StopFlag
    from smoltrain.engine.run import run

    events: list = []
    run(load_config(preset, [f"output_dir={tmp_path}", *SHORT]), tmp_path / "uninterrupted", events.append, StopFlag())
    return _losses(events)


def test_sigint_leaves_a_resumable_checkpoint_and_resume_ends_like_an_uninterrupted_run(sft_preset, tmp_path):
    handle = start_run(sft_preset, tmp_path, SHORT)
    _wait_for_step(handle, 3)
    assert running_worker(handle.run_dir) == handle.process.pid
    with pytest.raises(ConfigError, match="still training"):
        runner.resume_checks(handle.run_dir)  # never two workers on one run
    assert runner.request_stop(handle.run_dir)  # as another terminal or a reopened app would
    assert handle.wait() == 0
    assert running_worker(handle.run_dir) is None
    stopped = read_events(handle.events_path)
    finished = [e for e in stopped if e.type == "run_finished"][-1]
    assert finished.status == "stopped" and 3 <= finished.step < MAX_STEPS
    checkpoint = handle.run_dir / "checkpoints" / f"checkpoint-{finished.step}"
    assert is_complete(checkpoint)

    # A later checkpoint cut off mid-write (kill -9, full disk): no manifest, a truncated adapter.
    torn = handle.run_dir / "checkpoints" / f"checkpoint-{finished.step + 1}"
    shutil.copytree(checkpoint, torn)
    (torn / MANIFEST).unlink()
    (torn / "adapter_model.safetensors").write_bytes(b"\0" * 10)
    assert last_complete(handle.run_dir / "checkpoints") == checkpoint

    resumed = runner.start(runner.resume_checks(handle.run_dir), resume=True)
    assert resumed.wait() == 0, (handle.run_dir / "worker.log").read_text()[-3000:]
    events = read_events(handle.events_path)[len(stopped):]
    started = [e for e in events if e.type == "run_started"][0]
    assert started.resumed_from == str(checkpoint)
    assert any(e.type == "warning" and str(torn) in e.message for e in events), "the torn checkpoint is named"
    assert not torn.exists()
    # The saved adapter was loaded into the fresh one, not stacked on top of it.
    first_started = [e for e in stopped if e.type == "run_started"][0]
    assert started.trainable_params == first_started.trainable_params
    done = [e for e in events if e.type == "run_finished"][-1]
    assert done.status == "completed" and done.step == MAX_STEPS

    # Same seed, data order and weights: the resumed losses follow the uninterrupted run's. (Two
    # uninterrupted runs of the CPU 4-bit kernels already differ by a few percent, hence the tolerance;
    # a fresh or doubled adapter would restart near the first step's loss.)
    ref, after = _uninterrupted_losses(sft_preset, tmp_path), _losses(events)
    first = min(after)
    assert first == finished.step + 1 and max(after) == max(ref) == MAX_STEPS
    gaps = [abs(after[s] - ref[s]) / ref[s] for s in after]
    assert max(gaps) < 0.2 and sum(gaps) / len(gaps) < 0.1, (ref, after)

    # Resuming a finished run is a user error with a hint, not a second training.
    assert main(["resume", str(handle.run_dir)]) == 2


def test_resume_of_a_finished_or_unknown_folder_exits_2(tmp_path, capsys):
    assert main(["resume", str(tmp_path / "nope")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    run_dir = tmp_path / "done"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text("")
    (run_dir / "events.jsonl").write_text(
        '{"type": "run_finished", "time": 0, "status": "completed", "step": 7, "final_dir": "x", "duration_s": 1}\n'
    )
    assert main(["resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "already finished (step 7)" in err and "hint: " in err


def test_a_resumed_pipeline_skips_finished_stages_and_continues_the_interrupted_one(tmp_path):
    from smoltrain.engine.control import StopFlag
    from smoltrain.engine.run import run

    preset = tmp_path / "pipe.toml"
    preset.write_text(
        (PRESETS_DIR / "demo-sft.toml").read_text().replace('"../assets', f'"{PRESETS_DIR.parent}/assets')
        + '\n[[stages]]\nname = "first"\ntechnique = "sft"\ntrain = { max_steps = 3 }\n'
        '[[stages]]\nname = "second"\ntechnique = "sft"\ntrain = { max_steps = 10 }\n'
    )
    cfg = load_config(preset, ["data.max_rows=32", "train.micro_batch_size=4", "data.eval_fraction=0", "train.save_steps=1000",
                               "train.logging_steps=1", "train.compare_prompts=0"])  # fmt: skip
    run_dir = tmp_path / "run"
    stop = StopFlag()
    events: list = []

    def emit(event: object) -> None:
        events.append(event)
        if isinstance(event, Metrics) and event.stage == 1 and event.step >= 4:
            stop.requested = True

    run(cfg, run_dir, emit, stop)
    assert events[-1].type == "run_finished" and events[-1].status == "stopped"
    stopped_at = events[-1].step
    assert (run_dir / "stages" / "first" / "stage-done.json").exists()
    assert not (run_dir / "stages" / "second" / "stage-done.json").exists()
    assert not (run_dir / "final").exists(), "an unfinished pipeline has no final result yet"

    events.clear()
    run(cfg, run_dir, events.append, StopFlag(), resume=True)
    assert any(e.type == "warning" and "(first) finished before" in e.message for e in events)
    assert [e.stage for e in events if e.type == "stage_started"] == [1]
    second = [e for e in events if e.type == "stage_started"][0]
    assert second.model == str(run_dir / "stages" / "first" / "merged")
    assert min(e.step for e in events if isinstance(e, Metrics)) == stopped_at + 1
    assert events[-1].type == "run_finished" and events[-1].status == "completed" and events[-1].step == 10
    assert (run_dir / "final" / "adapter_model.safetensors").exists()
