"""What a hobbyist's machine does to a run folder, and what the run must do then (issue 11's faults):
a kill during the final save, SIGTERM to the front end, a killed resume, a second resume, a full disk,
a checkpoint corrupted at the same size, a reward that scores nothing.

Short runs of the bundled tiny model; the worker runs in this process where the fault allows (its
main() has the same exit codes and events), as a real child where the fault is about processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from smoltrain import runner
from smoltrain.config.load import load_config
from smoltrain.engine import worker
from smoltrain.engine.checkpoints import is_complete, last_complete
from smoltrain.engine.events import Checkpoint, Metrics, RunFailed, RunFinished
from smoltrain.rundir import (
    EventReader,
    EventWriter,
    RunDir,
    read_events,
    running_worker,
)
from tests.conftest import train_in_process

pytestmark = pytest.mark.slow

FOUR_STEPS = ["train.compare_prompts=0", "train.max_steps=4", "train.save_steps=2", "train.save_total_limit=2", "train.logging_steps=1",
              "data.max_rows=32", "data.eval_fraction=0", "train.micro_batch_size=4"]  # fmt: skip
LONG = ["train.max_steps=400", "train.save_steps=1000", "train.logging_steps=1", "data.max_rows=64",
        "data.eval_fraction=0", "train.micro_batch_size=2"]  # fmt: skip


def _main(run_dir: Path, resume: bool = False) -> int:
    """The worker's main() in this process, its signal handlers put back afterwards."""
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        return worker.main([str(run_dir), *(["--resume"] if resume else [])])
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


@pytest.fixture(scope="module")
def four_steps(tmp_path_factory, request) -> Path:
    """A finished 4-step SFT run: checkpoint-2 and checkpoint-4 (both kept: save_total_limit 2), final/."""
    from smoltrain.config.presets import PROJECT_ROOT

    done = train_in_process(PROJECT_ROOT / "presets" / "demo-sft.toml", tmp_path_factory.mktemp("four"), FOUR_STEPS)
    assert done.exit_code == 0 and done.of_type("run_finished")[-1].step == 4
    return done.run_dir


def _killed_during_the_final_save(four_steps: Path, tmp_path: Path) -> RunDir:
    """The finished run as a kill -9 after the last checkpoint left it: no final/, no end events."""
    run = RunDir(tmp_path / "run")
    shutil.copytree(four_steps, run.root)
    shutil.rmtree(run.final)
    run.stage(None).done.unlink()
    events = read_events(run.events)
    last_save = max(i for i, e in enumerate(events) if isinstance(e, Checkpoint))
    run.events.write_text("".join(e.to_json() + "\n" for e in events[: last_save + 1]))
    return run


def _attempt(run: RunDir, offset: int) -> list:
    """The events written since `offset`: one attempt's."""
    return EventReader(run.events, offset=offset).read()


def test_rotation_keeps_the_newest_complete_checkpoints(four_steps):
    checkpoints = RunDir(four_steps).stage(None).checkpoints
    kept = sorted(p for p in checkpoints.iterdir() if p.is_dir())
    assert [p.name for p in kept] == ["checkpoint-2", "checkpoint-4"] and all(is_complete(p) for p in kept)


def test_resume_from_a_checkpoint_at_max_steps_finishes_the_stage_at_once(four_steps, tmp_path):
    """Fault 1: it used to train a fifth step of four."""
    run = _killed_during_the_final_save(four_steps, tmp_path)
    offset = run.events.stat().st_size
    assert _main(run.root, resume=True) == 0
    events = _attempt(run, offset)
    assert not [e for e in events if isinstance(e, Metrics)], "nothing is left to train"
    assert any(e.type == "warning" and "had reached its last step (4)" in e.message for e in events)
    end = events[-1]
    assert isinstance(end, RunFinished) and end.status == "completed" and end.step == 4
    adapter = "adapter_model.safetensors"
    assert (run.final / adapter).read_bytes() == (run.stage(None).checkpoints / "checkpoint-4" / adapter).read_bytes()
    assert (run.final / "tokenizer_config.json").is_file() and not (run.final / "optimizer.pt").exists()


def test_a_checkpoint_corrupted_at_the_same_size_is_skipped_for_the_previous_one(four_steps, tmp_path):
    """Fault 6: a size-only manifest let a damaged trainer_state.json through, and resume crashed."""
    run = _killed_during_the_final_save(four_steps, tmp_path)
    state = run.stage(None).checkpoints / "checkpoint-4" / "trainer_state.json"
    text = state.read_bytes()
    state.write_bytes(text[:10] + b"#" + text[11:])  # same size, not the same content
    assert not is_complete(state.parent)
    assert last_complete(run.stage(None).checkpoints).name == "checkpoint-2"
    offset = run.events.stat().st_size
    assert _main(run.root, resume=True) == 0, run.worker_log.read_text()[-2000:] if run.worker_log.exists() else ""
    events = _attempt(run, offset)
    assert any(e.type == "warning" and "checkpoint-4" in e.message and "skipped" in e.message for e in events)
    started = next(e for e in events if e.type == "run_started")
    assert started.resumed_from.endswith("checkpoint-2")
    assert [e.step for e in events if isinstance(e, Metrics)] == [3, 4]
    assert events[-1].type == "run_finished" and events[-1].status == "completed" and events[-1].step == 4


def _front_end(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "smoltrain.cli", *args], cwd=cwd, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip


def _wait_for(predicate, what: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def stopped_by_sigterm(tmp_path_factory, request):
    """Fault 2's run: `smoltrain run` got a SIGTERM (kill, a job scheduler) two steps in."""
    from smoltrain.config.presets import PROJECT_ROOT

    home = tmp_path_factory.mktemp("term")
    run = RunDir(home / "runs" / "t")
    sets = [a for s in [f"output_dir={home / 'runs'}", *LONG] for a in ("--set", s)]
    front = _front_end(["run", str(PROJECT_ROOT / "presets" / "demo-sft.toml"), *sets, "--name", "t"], home)
    _wait_for(lambda: any(isinstance(e, Metrics) and e.step >= 2 for e in read_events(run.events)), "step 2")
    pid = running_worker(run.root)
    front.send_signal(signal.SIGTERM)
    out, _ = front.communicate(timeout=120)
    return run, front.returncode, out, pid


def test_sigterm_to_the_front_end_stops_and_saves(stopped_by_sigterm):
    run, code, out, worker_pid = stopped_by_sigterm
    assert code == 0, out
    end = read_events(run.events)[-1]
    assert isinstance(end, RunFinished) and end.status == "stopped" and end.final_dir
    assert is_complete(run.stage(None).checkpoints / f"checkpoint-{end.step}")
    assert f"stopped at step {end.step}" in out
    assert running_worker(run.root) is None
    with pytest.raises(ProcessLookupError):
        os.kill(worker_pid, 0)  # the worker is gone, not training on


def test_a_second_worker_is_refused_and_a_killed_resume_is_reported(stopped_by_sigterm):
    """Faults 7 and 3: two resumes at once cannot both train; a resumed worker killed -9 is "the training
    process died" (exit 1), and none of the run's earlier attempts is replayed."""
    run, _, _, _ = stopped_by_sigterm
    old = EventWriter(run.events)  # an earlier attempt that failed: its error must never be printed again
    old(RunFailed(error_type="DataError", message="an old error of an earlier attempt", hint="", user_error=True))
    old.close()
    before = run.events.stat().st_size
    front = _front_end(["resume", str(run.root)], run.root.parent)
    _wait_for(lambda: any(isinstance(e, Metrics) for e in _attempt(run, before)), "the resumed run to train")

    # The race `resume_checks` cannot close: a second worker started anyway is refused by the lock.
    size = run.events.stat().st_size
    second = subprocess.run([sys.executable, "-m", "smoltrain.engine.worker", str(run.root), "--resume"],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert second.returncode == 2 and "this run is already training" in second.stderr
    assert run.events.stat().st_size >= size and not any(
        e.type == "run_failed" for e in _attempt(run, before)
    ), "the refused worker wrote nothing into the live run's events"
    again = subprocess.run([sys.executable, "-m", "smoltrain.cli", "resume", str(run.root)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "still training" in again.stderr

    os.kill(running_worker(run.root), signal.SIGKILL)
    out, _ = front.communicate(timeout=60)
    assert front.returncode == 1, out
    assert "the training process died (killed by SIGKILL)" in out
    assert "an old error" not in out and "stopped at step" not in out, out


def _mount_tmpfs(folder: Path, size_kb: int) -> bool:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(folder)], capture_output=True)
    return done.returncode == 0


def test_a_full_disk_is_a_user_error_that_keeps_the_last_checkpoint_and_resumes(four_steps, tmp_path):
    """Fault 4, on a real full disk: a tmpfs just big enough for one checkpoint of the tiny model."""
    from smoltrain.config.presets import PROJECT_ROOT

    checkpoint = RunDir(four_steps).stage(None).checkpoints / "checkpoint-2"
    one = sum(p.stat().st_size for p in checkpoint.rglob("*") if p.is_file()) // 1024
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, size_kb=int(one * 1.6) + 256):
        pytest.skip("mounting a tmpfs needs root")
    try:
        cfg = load_config(PROJECT_ROOT / "presets" / "demo-sft.toml",
                          [f"output_dir={disk}", *FOUR_STEPS, "train.max_steps=6"])  # fmt: skip
        run = RunDir(runner.create_run_dir(cfg, "full"))
        assert _main(run.root) == 2
        events = read_events(run.events)
        failed = events[-1]
        assert isinstance(failed, RunFailed) and failed.user_error and failed.error_type == "DiskFullError", failed
        assert str(run.root) in failed.message and " free)" in failed.message and "smoltrain resume" in failed.hint
        assert "its last complete checkpoint, checkpoint-2, is intact" in failed.message
        assert run.events.read_bytes().endswith(b"\n")  # the last word is whole
        kept = [p.name for p in run.stage(None).checkpoints.iterdir() if p.is_dir()]
        assert kept == ["checkpoint-2"]  # the partial one is gone
        assert is_complete(run.stage(None).checkpoints / "checkpoint-2")

        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # space freed
        offset = run.events.stat().st_size
        assert _main(run.root, resume=True) == 0
        resumed = _attempt(run, offset)
        assert [e.step for e in resumed if isinstance(e, Metrics)][0] == 3
        assert resumed[-1].type == "run_finished" and resumed[-1].status == "completed" and resumed[-1].step == 6
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def test_a_grpo_reward_that_scores_nothing_stops_the_run_with_exit_2(tmp_path):
    """Fault 8: TRL counts None as 0, so this run used to train on nothing with reward 0, silently."""
    from smoltrain.config.presets import PROJECT_ROOT
    from smoltrain.engine.techniques.rewards import SILENT_BATCHES_TO_STOP

    rewards = tmp_path / "my_rewards.py"
    rewards.write_text("def never(prompts, completions, **kwargs):\n    return [None] * len(completions)\n")
    preset = tmp_path / "grpo.toml"
    preset.write_text(f"""
[model]
name_or_path = "{PROJECT_ROOT / 'assets' / 'tiny-llama'}"
[data]
path = "{PROJECT_ROOT / 'assets' / 'data' / 'grpo.jsonl'}"
eval_fraction = 0
max_rows = 32
[train]
technique = "grpo"
max_steps = 20
micro_batch_size = 8
save_steps = 2
logging_steps = 1
[grpo]
num_generations = 4
max_completion_length = 8
[[grpo.rewards]]
name = "python"
path = "{rewards}"
function = "never"
""")
    run = RunDir(runner.create_run_dir(load_config(preset, [f"output_dir={tmp_path / 'runs'}"]), "never"))
    assert _main(run.root) == 2
    events = read_events(run.events)
    warned = [e for e in events if e.type == "warning" and "gave no completion a score" in e.message]
    assert len(warned) == 1 and "grpo.rewards[0] (never)" in warned[0].message
    failed = events[-1]
    assert isinstance(failed, RunFailed) and failed.user_error
    assert f"no completion got a score in {SILENT_BATCHES_TO_STOP} generation batches in a row" in failed.message
    assert any(e.type == "warning" and e.source == "library" and e.message.startswith("trl: ") for e in events)


def test_a_full_disk_is_recognised_without_root_too(tmp_path, monkeypatch):
    """Fault 4 where no tmpfs can be mounted: torch's writer fails as it does on a full disk (its words,
    measured on a tmpfs: "unexpected pos 576 vs 534") and the disk reports next to nothing free."""
    import torch

    from smoltrain.config.presets import PROJECT_ROOT

    real_save = torch.save

    def save_on_a_full_disk(obj, f, *args, **kwargs):
        if str(f).endswith("optimizer.pt") and "checkpoint-4" in str(f):
            Path(f).write_bytes(b"\0" * 100)  # the part that fitted
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    monkeypatch.setattr("smoltrain.rundir.free_bytes", lambda folder: 900 * 1024)
    cfg = load_config(PROJECT_ROOT / "presets" / "demo-sft.toml", [f"output_dir={tmp_path}", *FOUR_STEPS])
    run = RunDir(runner.create_run_dir(cfg, "full"))
    assert _main(run.root) == 2
    failed = read_events(run.events)[-1]
    assert isinstance(failed, RunFailed) and failed.error_type == "DiskFullError" and "(900.0 KB free)" in failed.message
    assert "checkpoint-2, is intact" in failed.message
    assert sorted(p.name for p in run.stage(None).checkpoints.iterdir() if p.is_dir()) == ["checkpoint-2"]
