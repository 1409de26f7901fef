"""Two training processes on the CPU (gloo), launched as a 2-GPU user launches them: `smoltrain run
--gpus 2`, which starts the worker under accelerate's own launcher.

Launches of two processes cost 15-30 s each on two cores, so there are two, of one pipeline (SFT, then
DPO from the SFT model merged on rank 0): stopped in the DPO stage through rank 0 alone, then resumed.
They check one events stream, the loss falling in both stages, a stop that every rank obeys at the same
step, a resume that continues to the same final step on the same process count only, and, against one
process run here, that 2 processes x 1 micro-batch make the same first step as 1 process x 2.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from smoltrain import runner
from smoltrain.config.presets import PROJECT_ROOT
from smoltrain.engine.checkpoints import is_complete, stage_done_step
from smoltrain.engine.events import Metrics, RunFinished, RunStarted
from smoltrain.errors import ConfigError
from smoltrain.rundir import RunDir, read_events
from tests.conftest import train_in_process

pytestmark = pytest.mark.slow

SFT_STEPS = DPO_STEPS = 12
ASSETS = PROJECT_ROOT / "assets"
COMMON = f"""
[model]
name_or_path = "{ASSETS / 'tiny-llama'}"
[lora]
rank = 16
alpha = 32
dropout = 0.0
[train]
micro_batch_size = 4
grad_accum = 1
max_length = 128
logging_steps = 1
save_steps = 1000
compare_prompts = 0
"""
SFT_DATA = f'{{ path = "{ASSETS / "data" / "sft.jsonl"}", eval_fraction = 0, max_rows = 256 }}'
PIPELINE = COMMON + f"""
[[stages]]
name = "sft"
technique = "sft"
data = {SFT_DATA}
train = {{ max_steps = {SFT_STEPS}, learning_rate = 1e-3 }}

[[stages]]
name = "dpo"
technique = "dpo"
data = {{ path = "{ASSETS / 'data' / 'dpo.jsonl'}", eval_fraction = 0, max_rows = 128 }}
train = {{ max_steps = {DPO_STEPS}, learning_rate = 5e-4 }}
"""


def _losses(events: list, stage: int) -> dict[int, float]:
    return {e.step: e.values["loss"] for e in events if isinstance(e, Metrics) and e.stage == stage and "loss" in e.values}


def _mean(losses: dict[int, float], steps: range) -> float:
    return sum(losses[s] for s in steps) / len(steps)


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The pipeline on 2 processes from the CLI, stopped at DPO step 3 or later through rank 0, then resumed:
    (run folder, the first attempt's events and stdout, the refusal of a resume on 1 process)."""
    root = tmp_path_factory.mktemp("two")
    preset = root / "pipeline.toml"
    preset.write_text(PIPELINE)
    command = [sys.executable, "-m", "smoltrain", "run", str(preset), "--gpus", "2", "--name", "two",
               "--set", f"output_dir={root}"]  # fmt: skip
    front = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    run_dir = root / "two"
    deadline = time.time() + 300
    while time.time() < deadline and front.poll() is None:
        events = read_events(RunDir(run_dir).events)
        if any(isinstance(e, Metrics) and e.stage == 1 and e.step >= 3 for e in events):
            break
        time.sleep(0.1)
    assert runner.request_stop(run_dir), "no worker to stop: " + (front.stdout.read() if front.stdout else "")
    out, _ = front.communicate(timeout=300)
    assert front.returncode == 0, out[-3000:]
    first = read_events(RunDir(run_dir).events)
    with pytest.raises(ConfigError) as refused:
        runner.resume_checks(run_dir, gpus=1)
    resumed = runner.start(runner.resume_checks(run_dir), resume=True)
    assert resumed.wait() == 0, resumed.log_path.read_text()[-3000:]
    return run_dir, first, out, refused.value


def test_two_processes_stop_together_and_resume_to_the_same_final_step(two_processes):
    run_dir, first, out, _ = two_processes
    assert "batch: 4 x 1 accumulation x 2 processes = 8" in out and "ddp on 2 processes" in out
    stopped = [e for e in first if isinstance(e, RunFinished)][-1]
    assert stopped.status == "stopped" and 3 <= stopped.step < DPO_STEPS
    run = RunDir(run_dir)
    # The SFT stage finished and was merged on rank 0 before DPO began; DPO starts from that merge.
    assert stage_done_step(run.stage("sft").done) == SFT_STEPS and (run.stage("sft").merged / "config.json").is_file()
    checkpoint = run.stage("dpo").checkpoints / f"checkpoint-{stopped.step}"
    assert is_complete(checkpoint)
    # Both ranks saved their part, at the same step: one RNG state each.
    assert sorted(p.name for p in checkpoint.glob("rng_state_*.pth")) == ["rng_state_0.pth", "rng_state_1.pth"]

    events = read_events(run.events)
    end = [e for e in events if isinstance(e, RunFinished)][-1]
    assert end.status == "completed" and end.step == DPO_STEPS
    assert (run.final / "adapter_model.safetensors").is_file()
    started = [e for e in events if isinstance(e, RunStarted)]
    assert [(s.processes, s.strategy, s.effective_batch) for s in started] == [(2, "ddp", 8)] * 2

    # One events stream: each step of each stage logged once (rank 1 writes none), none missing.
    steps = Counter((e.stage, e.step) for e in events if isinstance(e, Metrics) and "loss" in e.values)
    assert max(steps.values()) == 1
    assert sorted(steps) == [(0, s) for s in range(1, SFT_STEPS + 1)] + [(1, s) for s in range(1, DPO_STEPS + 1)]
    sft, dpo = _losses(events, 0), _losses(events, 1)
    assert _mean(sft, range(SFT_STEPS - 2, SFT_STEPS + 1)) < 0.8 * _mean(sft, range(1, 4)), sft
    assert _mean(dpo, range(DPO_STEPS - 2, DPO_STEPS + 1)) < _mean(dpo, range(1, 4)), dpo
    log = run.worker_log.read_text()
    assert "Traceback" not in log, log[-3000:]


def test_another_process_count_is_refused_on_resume_and_told_which(two_processes):
    refused = two_processes[3]
    assert "trains on 2 processes" in str(refused) and "--gpus 2" in refused.hint


def test_two_processes_of_one_micro_batch_step_like_one_process_of_two(two_processes, tmp_path):
    """Same effective batch, same rows in the first step, same first-step loss (TRL's invariant test, batch
    8 x 1 == batch 1 x 8, across processes instead of accumulation): the pipeline's SFT stage, 2 processes x 1
    micro-batch of 4, against the same SFT in one process with 2 micro-batches of 4."""
    _, first, _, _ = two_processes
    preset = tmp_path / "sft.toml"
    preset.write_text(COMMON + f"\n[data]\n" + "\n".join(
        f"{k} = {v}" for k, v in (("path", f'"{ASSETS / "data" / "sft.jsonl"}"'), ("eval_fraction", 0), ("max_rows", 256))
    ) + "\n")  # fmt: skip
    one = train_in_process(preset, tmp_path, ["train.technique=sft", "train.max_steps=1", "train.grad_accum=2",
                                              "train.learning_rate=1e-3"])  # fmt: skip
    assert one.exit_code == 0
    started = next(e for e in one.events if isinstance(e, RunStarted))
    assert (started.processes, started.effective_batch) == (1, 8)
    assert _losses(first, 0)[1] == pytest.approx(_losses(one.events, 0)[1], rel=1e-3)


def test_a_run_asking_for_more_gpus_than_the_machine_has_is_refused(monkeypatch, tmp_path):
    from smoltrain.config.load import load_config
    from smoltrain.config.presets import PRESETS_DIR

    monkeypatch.setattr(runner, "visible_gpus", lambda: 1)
    cfg = load_config(PRESETS_DIR / "demo-sft.toml", [f"output_dir={tmp_path}", "distributed.gpus=2"])
    with pytest.raises(ConfigError, match="has 1 GPU") as refused:
        runner.start(runner.create_run_dir(cfg, "x"))
    assert "--gpus 1" in refused.value.hint
