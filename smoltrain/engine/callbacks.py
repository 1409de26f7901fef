"""The bridge from TRL's trainer to smoltrain's events, and from a stop request back to the trainer.

`EventCallback` turns every `on_log` into a metrics or eval event (TRL's own metric names,
plus tokens/s, the run's peak memory and, on CUDA, the GPU's live figures from NVML), every save
into a checkpoint event, and watches the training health (NaN loss, exploding gradients). Between
logs it reports the step reached as a progress event: at training's begin (a resumed stage's step), then
at most about once a second and at the last step, so a front end's bar moves without bloating events.jsonl.
`StopFlag` is set by the worker's signal handler; the callback then asks the trainer to save and stop at the end of the current step. A front end asks
for a checkpoint now by creating `runs/<name>/control/save_now` (an empty file); the callback
looks for it after every step (one stat), saves, and removes it. Every save is marked complete
(checkpoints.mark_complete) once transformers has written it, so a resume can tell it from a
half-written one, and only then are older checkpoints rotated out (checkpoints.rotate).
With more than one process (engine/distributed.py) the ranks agree on "stop" and "save now" at every
step's end, so all of them stop and save at the same step, and the manifest is written by rank 0
once every rank has written its part of the checkpoint.

Runs in the worker. Imports transformers' callback base, never textual; NVIDIA's `pynvml`
(nvidia-ml-py, optional) only when CUDA is there, and never fails a run over it.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    TrainerCallback,
    TrainerControl,
    TrainerState,
    TrainingArguments,
)

from smoltrain.engine import distributed
from smoltrain.engine.checkpoints import mark_complete, rotate
from smoltrain.engine.control import StopFlag
from smoltrain.engine.events import Checkpoint, Emit, Eval, Metrics, Progress, Sample, Warning

# Logged once at the end of training by Trainer: summaries, not step metrics.
_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}
PROGRESS_EVERY_S = 1.0  # between logs, the bar moves about this often; every step would bloat events.jsonl


def memory_figures() -> dict[str, float]:
    """Peak memory in GiB: CUDA allocated/reserved on a GPU, the process's peak RSS otherwise."""
    if torch.cuda.is_available():
        return {
            "memory_allocated_gb": torch.cuda.max_memory_allocated() / 2**30,
            "memory_reserved_gb": torch.cuda.max_memory_reserved() / 2**30,
        }
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    return {"memory_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30}


class GpuFigures:
    """The GPU's live figures from NVML (NVIDIA's own binding, nvidia-ml-py): utilisation %, memory used of
    total (all processes on the GPU, not only this run) and temperature. Nothing without CUDA or without the
    package, and nothing from the first NVML error on (an old driver, a GPU NVML cannot see): a figure is
    never worth a failed run."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._handle: Any = None
        self._off = False

    def read(self) -> dict[str, float]:
        if self._off or not torch.cuda.is_available():
            return {}
        try:
            import pynvml  # lazily: an optional extra, and only worth loading on CUDA
        except ImportError:
            self._off = True
            return {}
        try:
            if self._handle is None:
                pynvml.nvmlInit()
                self._handle = _nvml_handle(pynvml)
            memory = pynvml.nvmlDeviceGetMemoryInfo(self._handle)
            return {
                "gpu_util_pct": float(pynvml.nvmlDeviceGetUtilizationRates(self._handle).gpu),
                "gpu_mem_used_gb": memory.used / 2**30,
                "gpu_mem_total_gb": memory.total / 2**30,
                "gpu_temp_c": float(pynvml.nvmlDeviceGetTemperature(self._handle, pynvml.NVML_TEMPERATURE_GPU)),
            }
        except pynvml.NVMLError:
            self._off = True
            return {}


def _nvml_handle(pynvml: Any) -> Any:
    """This process's CUDA device in NVML's numbering: CUDA_VISIBLE_DEVICES renumbers what torch sees."""
    index = torch.cuda.current_device()
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if index < len(visible):
        if not visible[index].isdigit():
            return pynvml.nvmlDeviceGetHandleByUUID(visible[index])
        index = int(visible[index])
    return pynvml.nvmlDeviceGetHandleByIndex(index)


class EventCallback(TrainerCallback):
    def __init__(
        self, emit: Emit, stop: StopFlag, stage: int = 0, save_now: Path | None = None, keep_checkpoints: int | None = None
    ) -> None:
        self.emit = emit
        self.stop = stop
        self.stage = stage
        self._save_now = save_now  # the run folder's "save a checkpoint now" request file
        self._keep = keep_checkpoints  # save_total_limit: rotation happens here, after the manifest
        self._save_requested = False
        self._last_time: float | None = None
        self._last_tokens = 0
        self._warned: set[str] = set()
        self._gpu = GpuFigures()
        self._clock = time.monotonic
        self._progress_sent: float | None = None  # when the last progress event went out
        self._first_step = 1  # this training's first step: a resumed stage's is its checkpoint's plus one

    def on_train_begin(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._last_time = time.perf_counter()
        self._last_tokens = state.num_input_tokens_seen
        self._progress_sent, self._first_step = None, state.global_step + 1
        self._send_progress(state)  # a resumed stage's step, loaded from its checkpoint by now

    def on_step_end(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        self._send_progress(state)
        asked_to_save = self._save_now is not None and distributed.is_main() and self._save_now.exists()
        stop, save = distributed.agree(self.stop.requested, asked_to_save)
        if stop:
            self.stop.requested = True  # a rank that was not signalled stops too, and its run loop knows why
            control.should_save = True
            control.should_training_stop = True
        if save:
            control.should_save = True
            self._save_requested = True

    def on_log(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, logs: dict[str, Any] | None = None, **kw: Any
    ) -> None:
        logs = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float)) and k not in _SUMMARY_KEYS}
        if set(logs) <= {"epoch", "num_input_tokens_seen"}:  # the end-of-training summary: nothing per-step left
            return
        position = {"step": state.global_step, "max_steps": state.max_steps, "stage": self.stage}
        if any(k.startswith("eval_") for k in logs):
            self.emit(Eval(**position, **logs))
            return
        logs.update(self._throughput(state))
        logs.update(memory_figures())
        logs.update(self._gpu.read())
        self.emit(Metrics(**position, **logs))
        self._check_health(state, logs)

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        distributed.wait()  # every rank's part (its RNG state, its shard) is written before the manifest
        if distributed.is_main():
            if path.is_dir():
                mark_complete(path)
                rotate(Path(args.output_dir), self._keep)
            if self._save_requested and self._save_now is not None:
                # Removed only after the save, so a request is never lost to a crash in between.
                self._save_now.unlink(missing_ok=True)
        self._save_requested = False
        distributed.wait()  # no rank trains on (and could be stopped) before the checkpoint is marked
        self.emit(Checkpoint(step=state.global_step, stage=self.stage, path=str(path)))

    def _send_progress(self, state: TrainerState) -> None:
        """The step reached: the first, then at most once per PROGRESS_EVERY_S, and the last."""
        now, sent = self._clock(), self._progress_sent
        due = sent is None or now - sent >= PROGRESS_EVERY_S
        if due or state.global_step in (self._first_step, state.max_steps):
            self._progress_sent = now
            self.emit(Progress(step=state.global_step, max_steps=state.max_steps, stage=self.stage))

    def _throughput(self, state: TrainerState) -> dict[str, float]:
        now = time.perf_counter()
        tokens = state.num_input_tokens_seen
        out: dict[str, float] = {}
        if self._last_time is not None and now > self._last_time and tokens > self._last_tokens:
            out["tokens_per_second"] = (tokens - self._last_tokens) / (now - self._last_time)
        self._last_time, self._last_tokens = now, tokens
        return out

    def _check_health(self, state: TrainerState, logs: dict[str, float]) -> None:
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(loss):
            self._warn_once("nan", f"loss is {loss} at step {state.global_step}",
                            "lower train.learning_rate, or use bfloat16 instead of float16", state.global_step)  # fmt: skip
        grad_norm = logs.get("grad_norm")
        if grad_norm is not None and math.isfinite(grad_norm) and grad_norm > 100:
            self._warn_once("grad", f"gradient norm {grad_norm:.0f} at step {state.global_step}: training may diverge",
                            "lower train.learning_rate or raise train.warmup_ratio", state.global_step)  # fmt: skip

    def _warn_once(self, key: str, message: str, hint: str, step: int) -> None:
        if key not in self._warned:
            self._warned.add(key)
            self.emit(Warning(message=message, hint=hint, step=step))


class SampleCallback(TrainerCallback):
    """After each logged GRPO step, emit the best and worst completion scored since the last log."""

    def __init__(self, emit: Emit, rewards: Any, stage: int = 0) -> None:
        self.emit = emit
        self.rewards = rewards  # a techniques.rewards.RewardSet
        self.stage = stage

    def on_log(self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kw: Any) -> None:
        scored = self.rewards.take_samples()
        if not scored:
            return
        ranked = sorted(scored, key=lambda s: s.total)
        picks = [("best", ranked[-1])] + ([("worst", ranked[0])] if len(ranked) > 1 else [])
        for label, sample in picks:
            self.emit(Sample(step=state.global_step, stage=self.stage, prompt=sample.prompt,
                             completion=sample.completion, reward=sample.total, label=label,
                             rewards={k: v for k, v in sample.rewards.items() if v is not None}))  # fmt: skip
