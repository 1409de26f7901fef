"""The headless front end: run events -> a progress bar and console lines.

On a terminal, one bar line is redrawn in place (step/total, loss, tokens/s, ETA) on every metrics and
progress event, and everything else (evals, checkpoints, warnings) prints above it; in a log file or a
pipe the bar becomes a plain line every few seconds (of the events' own times, so a replay prints the same).
The Log tab of the app is this printer's output, on the app's own RunState. Ctrl-C (or a SIGTERM,
from `kill` or a job scheduler) asks the run to save and stop; a second one stops it at once. A worker that dies without an end
event (kill -9, the OOM killer) is reported as such, with exit code 1.

Imports no torch and no textual.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TextIO

from smoltrain import runner
from smoltrain.engine.events import (
    Checkpoint,
    Curated,
    Eval,
    EvalResult,
    Event,
    Metrics,
    Progress,
    RunFailed,
    RunFinished,
    RunStarted,
    Sample,
    StageFinished,
    StageStarted,
    Warning,
)  # fmt: skip
from smoltrain.errors import BUG_EXIT_CODE, USER_ERROR_EXIT_CODE
from smoltrain.evalresults import read_results, render
from smoltrain.rundir import RunDir, events_size, tail_events
from smoltrain.runstate import RunState, curated_lines, format_duration

BAR_WIDTH = 24
BEFORE_AFTER_SHOWN = 2  # pairs of a stage's before/after answers printed; samples/<stage>.json has them all
PLAIN_LINE_EVERY_S = 5.0
# Logged with every evaluation but not about the model's quality.
_EVAL_BOOKKEEPING = {"runtime", "samples_per_second", "steps_per_second", "epoch", "num_tokens", "num_input_tokens_seen"}


class Printer:
    """Renders events as lines; the figures it prints (ETA, memory) come from the RunState fold the
    app renders too."""

    def __init__(self, out: TextIO = sys.stdout, tty: bool | None = None, state: RunState | None = None) -> None:
        self.out = out
        self.tty = out.isatty() if tty is None else tty
        self.state = state if state is not None else RunState()  # the app passes its own: one fold, one ETA
        self._bar_shown = False
        self._last_plain = 0.0
        self._sample_every = 1
        self._sample_step: int | None = None
        self._run_dir: Path | None = None

    def line(self, text: str) -> None:
        if self._bar_shown:
            self.out.write("\r\033[K")
            self._bar_shown = False
        self.out.write(text + "\n")
        self.out.flush()

    def render(self, event: Event) -> None:
        self.state.feed(event)
        if isinstance(event, RunStarted):
            self._run_dir = Path(event.run_dir)
            self.line(f"run {event.name}: {event.model} on {event.device} ({event.dtype})")
            self.line("  " + " | ".join(f"{k}: {v}" for k, v in event.active.items()))
            self.line(f"  trainable parameters: {event.trainable_params:,} of {event.total_params:,}")
        elif isinstance(event, StageStarted):
            self._sample_every, self._sample_step = max(1, event.max_steps // 10), None
            self.line(f"stage {event.stage + 1}: {event.technique}, {event.max_steps} steps")
            self.line(f"  data: {event.data}")
        elif isinstance(event, (Metrics, Progress)):
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
            said = "library warning" if event.source == "library" else "warning"
            self.line(f"{said}: {event.message}" + (f" (hint: {event.hint})" if event.hint else ""))
        elif isinstance(event, EvalResult):
            scores = "  ".join(f"{k} {v:.3f}" for k, v in event.scores.items())
            self.line(f"eval {event.subject}: {scores}")
        elif isinstance(event, Curated):
            for text in curated_lines(event):
                self.line(text)
        elif isinstance(event, StageFinished):
            ended = "stopped" if event.step < self.state.max_steps else "done"  # a stop ends a stage early
            self.line(f"stage {event.stage + 1} ({event.technique}) {ended} at step {event.step}: {event.output_dir}")
        elif isinstance(event, RunFinished):
            self._finished(event)
        elif isinstance(event, RunFailed):
            self._failed(event)

    def _sample(self, event: Sample) -> None:
        """Best and worst completions, about ten times a stage: every step would drown the log. Of a stage's
        before/after answers, the first two pairs."""
        if event.label in ("before", "after"):
            pairs = self.state.comparisons.get(event.stage, [])
            if event.label == "after" and pairs and len(pairs) <= BEFORE_AFTER_SHOWN:
                prompt, before, after = pairs[-1]
                self.line(f"before/after @ step {event.step}: {prompt[:100]!r}")
                self.line(f"  before: {before[:160]!r}")
                self.line(f"  after:  {after[:160]!r}")
            return
        if self._sample_step is not None and event.step != self._sample_step and event.step - self._sample_step < self._sample_every:
            return
        self._sample_step = event.step
        self.line(f"sample @ step {event.step} ({event.label}, reward {_num(event.reward)}): {event.completion[:100]!r}")

    def _progress(self, event: Metrics | Progress) -> None:
        """The bar, from the fold: a progress event moves its step and keeps the last logged loss."""
        state = self.state
        frac = min(1.0, state.step / state.max_steps) if state.max_steps > 0 else 0.0
        filled = int(frac * BAR_WIDTH)
        parts = [f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {state.step}/{state.max_steps}"]
        if "loss" in state.last:
            parts.append(f"loss {_num(state.last['loss'])}")
        text = "  ".join(parts + state.status_parts())
        last_logged_step = isinstance(event, Metrics) and event.step >= event.max_steps
        if self.tty:
            self.out.write("\r\033[K" + text)
            self.out.flush()
            self._bar_shown = True
        elif event.time - self._last_plain >= PLAIN_LINE_EVERY_S or last_logged_step:
            self._last_plain = event.time
            self.line(text)

    def _finished(self, event: RunFinished) -> None:
        took = format_duration(event.duration_s)
        if event.status == "stopped":
            if event.stopped_at is not None:  # stopped at once: nothing saved now
                where = (f"; the last complete checkpoint is at step {event.step}" if event.step
                         else "; no checkpoint was saved yet")  # fmt: skip
                self.line(f"stopped at once at step {event.stopped_at}{where} ({took})")
                return
            where = f"; saved to {event.final_dir}" if event.final_dir else ""
            self.line(f"stopped at step {event.step}{where} ({took})")
            return
        self.line(f"done: {event.step} steps in {took}")
        results = read_results(RunDir(self._run_dir).eval) if self._run_dir else []
        if results:
            self.line("evaluation (held-out; smoltrain eval RUN to score again):")
            for text in render(results):
                self.line("  " + text)
        if event.final_dir:
            run = Path(event.final_dir).parent
            self.line(f"  adapter and tokenizer: {event.final_dir}")
            self.line(f"  load it with peft.{self.state.auto_class()}.from_pretrained(<that folder>)")
            if self.state.technique != "reward":
                self.line(f"  talk to it: smoltrain chat {run} --compare")
            formats = "merged" if self.state.technique == "reward" else "merged|gguf|ollama"
            self.line(f"  export it:  smoltrain export {run} --to {formats}")

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
    """Render a running run until it ends; Ctrl-C or SIGTERM becomes a stop request (a second one
    stops at once). Returns the exit code: the worker's, or 1 if it died without an end."""
    printer = printer or Printer()
    presses = 0

    def on_stop(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        printer.line("stopping: finishing this step and saving (Ctrl-C again to stop at once)" if presses == 1
                     else "stopping now")  # fmt: skip
        handle.request_stop()

    previous = {sig: signal.signal(sig, on_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    saw_end = False
    try:
        for event in handle.events():
            printer.render(event)
            saw_end = saw_end or isinstance(event, (RunFinished, RunFailed))
        code = handle.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if saw_end:
        return code
    if code == USER_ERROR_EXIT_CODE and (said := handle.log_errors()):
        for line in said:  # refused before it could write an event (another worker holds the run)
            printer.line(line)
        return USER_ERROR_EXIT_CODE
    how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
    printer.line(f"error: the training process died ({how}) without a word; see {handle.log_path}")
    return BUG_EXIT_CODE


def run_headless(run_dir: Path, resume: bool = False) -> int:
    return watch(runner.start(run_dir, resume=resume))


@contextlib.contextmanager
def following(run_dir: Path, printer: Printer | None = None) -> Iterator[None]:
    """Print the run's new events from a thread while the block runs (the worker itself, in this process:
    rank 0 of a user's own `accelerate launch -m smoltrain run`), and the last ones once it has ended."""
    printer = printer or Printer()
    done = threading.Event()
    path, offset = RunDir(run_dir).events, events_size(RunDir(run_dir))

    def follow() -> None:
        for event in tail_events(path, poll=lambda: not done.is_set(), offset=offset, interval=0.2):
            printer.render(event)

    thread = threading.Thread(target=follow, name="smoltrain-events", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=5)
