"""Preflight, out-of-memory handling and auto_fit, and "save a checkpoint now", run in-process.

CUDA OOM cannot happen on the CPU, so it is injected: the preflight or one training step raises
torch.cuda.OutOfMemoryError, as a GPU would.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

import smoltrain
import smoltrain.memory.shapes  # noqa: F401 - loaded before the tests below hide smoltrain.memory: the disk check reads it
from smoltrain.config.load import load_config
from smoltrain.engine import preflight
from smoltrain.engine.checkpoints import is_complete
from smoltrain.engine.control import StopFlag
from smoltrain.engine.events import Checkpoint, Metrics
from smoltrain.engine.run import run
from smoltrain.errors import FitError

pytestmark = pytest.mark.slow

QUICK = ["data.max_rows=48", "data.eval_fraction=0", "train.logging_steps=1", "train.save_steps=1000",
         "train.compare_prompts=0"]  # fmt: skip


def _oom() -> torch.cuda.OutOfMemoryError:
    return torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def _run(sft_preset: Path, tmp_path: Path, overrides: list[str]) -> list:
    cfg = load_config(sft_preset, [*QUICK, *overrides])
    events: list = []
    run(cfg, tmp_path / "run", events.append, StopFlag())
    return events


def test_oom_in_the_preflight_explains_and_suggests_a_fit(sft_preset, tmp_path, monkeypatch):
    def no_memory(trainer, cfg):
        raise _oom()

    monkeypatch.setattr(preflight, "preflight", no_memory)
    monkeypatch.setattr(preflight, "gpu_memory_gb", lambda: 8.0)
    fake = types.ModuleType("smoltrain.memory")
    fake.estimate = lambda cfg, gpu: types.SimpleNamespace(total_gb=11.5)
    fake.fit = lambda cfg, gpu: types.SimpleNamespace(overrides={"train.micro_batch_size": 2, "train.grad_accum": 4},
                                                      explain=lambda: "micro_batch_size 2 x grad_accum 4 fits in 8 GB")
    monkeypatch.setitem(sys.modules, "smoltrain.memory", fake)
    monkeypatch.setattr(smoltrain, "memory", fake, raising=False)

    with pytest.raises(FitError) as err:
        _run(sft_preset, tmp_path, ["train.max_steps=3"])
    assert "out of GPU memory in the preflight" in err.value.message and "micro_batch_size 8" in err.value.message
    assert "estimated 11.5 GiB of 8.0 GiB" in err.value.message
    assert "--set train.micro_batch_size=2" in err.value.hint and "train.auto_fit = true" in err.value.hint


def test_without_a_memory_model_the_hint_is_generic(sft_preset, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "preflight", lambda trainer, cfg: (_ for _ in ()).throw(_oom()))
    monkeypatch.setattr(preflight, "gpu_memory_gb", lambda: 8.0)
    monkeypatch.setitem(sys.modules, "smoltrain.memory", None)  # "not installed": the import fails
    monkeypatch.delattr(smoltrain, "memory", raising=False)
    with pytest.raises(FitError) as err:
        _run(sft_preset, tmp_path, ["train.max_steps=3"])
    assert "micro_batch_size" in err.value.hint and "auto_fit" in err.value.hint


def test_auto_fit_halves_the_micro_batch_until_it_fits_and_says_so(sft_preset, tmp_path, monkeypatch):
    real = preflight.preflight

    def fits_at_two(trainer, cfg):
        if cfg.train.micro_batch_size > 2:
            raise _oom()
        real(trainer, cfg)

    monkeypatch.setattr(preflight, "preflight", fits_at_two)
    events = _run(sft_preset, tmp_path, ["train.max_steps=3", "train.auto_fit=true"])
    said = [e.message for e in events if e.type == "warning" and "out of GPU memory" in e.message]
    assert len(said) == 2
    assert "micro_batch_size 4 and grad_accum 2" in said[0] and "micro_batch_size 2 and grad_accum 4" in said[1]
    assert all("same effective batch" in m for m in said)
    assert len([e for e in events if e.type == "run_started"]) == 1
    assert events[-1].type == "run_finished" and events[-1].status == "completed" and events[-1].step == 3
    assert (tmp_path / "run" / "fit.json").read_text() == '{"micro_batch_size": 2, "grad_accum": 4}'


def test_auto_fit_gives_up_at_micro_batch_1(sft_preset, tmp_path, monkeypatch):
    monkeypatch.setattr(preflight, "preflight", lambda trainer, cfg: (_ for _ in ()).throw(_oom()))
    with pytest.raises(FitError, match="micro_batch_size 1"):
        _run(sft_preset, tmp_path, ["train.max_steps=3", "train.auto_fit=true", "train.micro_batch_size=2"])


def test_oom_mid_run_resumes_from_the_last_checkpoint_with_a_smaller_batch(sft_preset, tmp_path, monkeypatch):
    from transformers import Trainer

    real_step = Trainer.training_step
    raised = []

    def step(self, *args, **kwargs):
        if self.state.global_step == 3 and not raised:
            raised.append(self.args.per_device_train_batch_size)
            raise _oom()
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", step)
    events = _run(sft_preset, tmp_path, ["train.max_steps=5", "train.auto_fit=true", "train.save_steps=2"])
    assert raised == [8]
    warning = [e for e in events if e.type == "warning" and "out of GPU memory" in e.message][0]
    assert "at step 4" in warning.message
    steps = [e.step for e in events if isinstance(e, Metrics)]
    assert steps[steps.index(3) + 1] == 3, "the retry continues from checkpoint-2, at step 3"
    assert events[-1].status == "completed" and events[-1].step == 5


def test_save_now_request_saves_a_checkpoint_and_is_cleared(sft_preset, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    request = run_dir / "control" / "save_now"
    seen_batches: list[int] = []
    real_batch = preflight._longest_batch

    def spy(trainer, size):
        batch = real_batch(trainer, size)
        seen_batches.append(batch["input_ids"].shape[1])
        seen_batches.append(max(len(ids) for ids in trainer.train_dataset["input_ids"]))
        return batch

    monkeypatch.setattr(preflight, "_longest_batch", spy)
    cfg = load_config(sft_preset, [*QUICK, "train.max_steps=5"])
    events: list = []

    def emit(event):
        events.append(event)
        if isinstance(event, Metrics) and event.step == 2:
            request.parent.mkdir(parents=True, exist_ok=True)
            request.touch()

    run(cfg, run_dir, emit, StopFlag())
    assert seen_batches[0] == seen_batches[1], "the preflight batch holds the longest row"
    saved = [e.step for e in events if isinstance(e, Checkpoint)]
    assert saved[0] == 3 and is_complete(run_dir / "checkpoints" / "checkpoint-3")
    assert not request.exists()


@pytest.mark.parametrize("checkpointing", [True, False])
def test_the_preflight_measures_with_checkpointing_as_training_will(sft_preset, tmp_path, monkeypatch, checkpointing):
    """The Trainer turns checkpointing on only inside train(): a preflight before it kept every activation, far
    more memory than training (a false out-of-memory on a 12 GB card for an 8B model at 2048 tokens)."""
    seen: list[bool] = []
    longest = preflight._longest_batch

    def spy(trainer, size):
        seen.append(trainer.model.is_activation_checkpointing)
        return longest(trainer, size)

    monkeypatch.setattr(preflight, "_longest_batch", spy)
    _run(sft_preset, tmp_path, ["train.max_steps=1", f"train.gradient_checkpointing={str(checkpointing).lower()}"])
    assert seen == [checkpointing]
