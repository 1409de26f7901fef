"""The headless front end: run events -> a progress bar and console lines.

On a terminal, one bar line is redrawn in place (step/total, loss, tokens/s, ETA) and
everything else (evals, checkpoints, warnings) prints above it; in a log file or a pipe the
bar becomes a plain line every few seconds. Ctrl-C asks the run to save and stop; a second
Ctrl-C stops it at once.

Imports no torch and no textual.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TextIO

from smoltrain import runner
from smoltrain.engine.events import (
    Checkpoint,
    Eval,
    Event,
    Metrics,
    RunFailed,
    RunFinished,
    RunStarted,
    Sample,
    StageFinished,
    StageStarted,
    Warning,
)  # fmt: skip
from smoltrain.errors import BUG_EXIT_CODE

BAR_WIDTH = 24
PLAIN_LINE_EVERY_S = 5.0
# Logged with every evaluation but not about the model's quality.
_EVAL_BOOKKEEPING = {"runtime", "samples_per_second", "steps_per_second", "epoch", "num_tokens", "num_input_tokens_seen"}


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


class Printer:
    """Renders events; keeps just enough state for the ETA and the bar."""

    def __init__(self, out: TextIO = sys.stdout, tty: bool | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self._stage_start: float | None = None
        self._stage_first_step = 0
        self._bar_shown = False
        self._last_plain = 0.0
        self._last_technique = ""
        self._sample_every = 1
        self._sample_step: int | None = None
        self.last_eval_loss: dict[int, float] = {}

    def line(self, text: str) -> None:
        if self._bar_shown:
            self.out.write("\r\033[K")
            self._bar_shown = False
        self.out.write(text + "\n")
        self.out.flush()

    def render(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.line(f"run {event.name}: {event.model} on {event.device} ({event.dtype})")
            self.line("  " + " | ".join(f"{k}: {v}" for k, v in event.active.items()))
            self.line(f"  trainable parameters: {event.trainable_params:,} of {event.total_params:,}")
        elif isinstance(event, StageStarted):
            self._stage_start, self._stage_first_step = time.time(), 0
            self._sample_every, self._sample_step = max(1, event.max_steps // 10), None
            self.line(f"stage {event.stage + 1}: {event.technique}, {event.max_steps} steps")
            self.line(f"  data: {event.data}")
        elif isinstance(event, Metrics):
            self._progress(event)
        elif isinstance(event, Eval):
            values = "  ".join(f"{k.removeprefix('eval_')} {_num(v)}" for k, v in event.values.items()
                               if k.removeprefix("eval_") not in _EVAL_BOOKKEEPING)  # fmt: skip
            self.line(f"eval @ step {event.step}: {values}")
        elif isinstance(event, Checkpoint):
            self.line(f"checkpoint saved: {event.path}")
        elif isinstance(event, Sample):
            self._sample(event)
        elif isinstance(event, Warning):
            self.line(f"warning: {event.message}" + (f" (hint: {event.hint})" if event.hint else ""))
        elif isinstance(event, StageFinished):
            self._last_technique = event.technique
            self.line(f"stage {event.stage + 1} ({event.technique}) done at step {event.step}: {event.output_dir}")
        elif isinstance(event, RunFinished):
            self._finished(event)
        elif isinstance(event, RunFailed):
            self._failed(event)

    def _sample(self, event: Sample) -> None:
        """Best and worst completions, about ten times a stage: every step would drown the log."""
        if self._sample_step is not None and event.step != self._sample_step and event.step - self._sample_step < self._sample_every:
            return
        self._sample_step = event.step
        self.line(f"sample @ step {event.step} ({event.label}, reward {_num(event.reward)}): {event.completion[:100]!r}")

    def _progress(self, event: Metrics) -> None:
        now = time.time()
        if self._stage_start is None:
            self._stage_start, self._stage_first_step = now, event.step
        done = event.step - self._stage_first_step
        elapsed = now - self._stage_start
        eta = elapsed / done * (event.max_steps - event.step) if done > 0 else None
        v = event.values
        frac = min(1.0, event.step / event.max_steps) if event.max_steps > 0 else 0.0
        filled = int(frac * BAR_WIDTH)
        parts = [f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {event.step}/{event.max_steps}"]
        if "loss" in v:
            parts.append(f"loss {_num(v['loss'])}")
        if "tokens_per_second" in v:
            parts.append(f"{v['tokens_per_second']:,.0f} tok/s")
        mem = v.get("memory_allocated_gb", v.get("memory_rss_gb"))
        if mem is not None:
            parts.append(f"mem {mem:.1f} GB")
        parts.append(f"ETA {format_duration(eta) if eta is not None else '--:--'}")
        text = "  ".join(parts)
        if self.tty:
            self.out.write("\r\033[K" + text)
            self.out.flush()
            self._bar_shown = True
        elif now - self._last_plain >= PLAIN_LINE_EVERY_S or event.step >= event.max_steps:
            self._last_plain = now
            self.line(text)

    def _finished(self, event: RunFinished) -> None:
        took = format_duration(event.duration_s)
        if event.status == "stopped":
            where = f"; saved to {event.final_dir}" if event.final_dir else ""
            self.line(f"stopped at step {event.step}{where} ({took})")
            return
        self.line(f"done: {event.step} steps in {took}")
        if event.final_dir:
            self.line(f"  adapter and tokenizer: {event.final_dir}")
            auto_class = "AutoPeftModelForSequenceClassification" if self._last_technique == "reward" else "AutoPeftModelForCausalLM"
            self.line(f"  load it with peft.{auto_class}.from_pretrained(<that folder>)")

    def _failed(self, event: RunFailed) -> None:
        if event.user_error:
            self.line(f"error: {event.message}")
            if event.hint:
                self.line(f"  hint: {event.hint}")
        else:
            self.line(f"error: smoltrain crashed: {event.error_type}: {event.message}")
            self.line("  this is a bug: the traceback is in the run's worker.log; please report it")


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def watch(handle: runner.RunHandle, printer: Printer | None = None) -> int:
    """Render a running run until it ends; Ctrl-C becomes a stop request. Returns the exit code."""
    printer = printer or Printer()
    presses = 0

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        printer.line("stopping: finishing this step and saving (Ctrl-C again to stop at once)" if presses == 1
                     else "stopping now")  # fmt: skip
        handle.request_stop()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    saw_end = False
    try:
        for event in handle.events():
            printer.render(event)
            saw_end = saw_end or isinstance(event, (RunFinished, RunFailed))
        code = handle.wait()
    finally:
        signal.signal(signal.SIGINT, previous)
    if not saw_end:
        printer.line(f"error: the training process died (exit {code}) without a word; see {handle.log_path}")
        return code or BUG_EXIT_CODE
    return code


def run_headless(run_dir: Path, resume: bool = False) -> int:
    return watch(runner.start(run_dir, resume=resume))
