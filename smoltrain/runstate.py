"""The run state: every event of a run folded into what a front end shows (progress, ETA, memory,
curves, samples, how it ended, what to do next). The one fold both front ends render: the headless
printer's bar and the app's header say the same ETA and memory figure because they read it here.

One RunState per run, fed every event in order (live from a tail, or all at once from a finished
run's events.jsonl). Pipelines have several stages; their steps are laid end to end on one x axis so
a pipeline's curves read left to right, each stage's points kept apart (two techniques' losses are never
one line), with marks where a stage began, a checkpoint was saved, the run stopped or resumed. Times
come from the events, not the clock, so a replayed file gives the same figures as the live run.

Pure Python (stdlib, smoltrain.engine.events, smoltrain.config.techniques): never torch or textual.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from smoltrain.config.techniques import FACTS
from smoltrain.engine.events import (
    Checkpoint,
    Curated,
    Eval,
    Event,
    Metrics,
    Progress,
    RunFailed,
    RunFinished,
    RunStarted,
    Sample,
    StageFinished,
    StageStarted,
)  # fmt: skip

SAMPLES_KEPT = 20  # the best and worst of the last ~10 logged steps
_CHECKPOINT_STEP = re.compile(r"checkpoint-(\d+)$")


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


@dataclass(frozen=True)
class Mark:
    """A place on the run's step axis that the plots mark: where a stage began, a checkpoint, a stop, a resume."""

    x: float
    kind: Literal["stage", "checkpoint", "stopped", "resumed"]
    stage: int
    label: str = ""


@dataclass
class RunState:
    name: str = ""
    active: dict[str, str] = field(default_factory=dict)
    stages: list[str] = field(default_factory=list)
    stage: int = 0
    technique: str = ""
    step: int = 0
    max_steps: int = 0
    stage_data: str = ""
    last: dict[str, float] = field(default_factory=dict)  # the latest metrics event's values
    # Each stage's curves apart (stage -> key -> [(global step, value)]): losses of two techniques never join.
    stage_series: dict[int, dict[str, list[tuple[float, float]]]] = field(default_factory=dict)
    stage_starts: dict[int, float] = field(default_factory=dict)  # global step where each stage began
    marks: list[Mark] = field(default_factory=list)
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    checkpoints: list[str] = field(default_factory=list)
    # Each policy stage's held-out prompts answered before and after it: stage -> [(prompt, before, after)].
    comparisons: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)
    curated: dict[int, Curated] = field(default_factory=dict)  # each curate stage's score distribution and counts
    finished: RunFinished | None = None
    failed: RunFailed | None = None
    _resume_step: int | None = None  # the checkpoint step a resume starts from (shown, not 0), until its stage starts
    _resuming: bool = False  # a run_started after earlier stages: its stage's start is marked as a resume
    _attempt_time: float | None = None  # the latest run_started's time: elapsed counts from there
    _latest_time: float = 0.0  # the latest event's time
    _stage_clock: tuple[float, int] | None = None  # (time, step) of the stage's first metrics or progress event
    _last_time: float = 0.0  # the latest metrics or progress event's time
    _before: dict[int, Sample] = field(default_factory=dict)  # a "before" answer waiting for its "after"

    @property
    def ended(self) -> bool:
        return self.finished is not None or self.failed is not None

    @property
    def series(self) -> dict[str, list[tuple[float, float]]]:
        """Every stage's curves laid end to end, by key."""
        merged: dict[str, list[tuple[float, float]]] = {}
        for stage in sorted(self.stage_series):
            for key, points in self.stage_series[stage].items():
                merged.setdefault(key, []).extend(points)
        return merged

    def feed(self, event: Event) -> None:
        self._latest_time = max(self._latest_time, event.time)
        if isinstance(event, RunStarted):
            self._attempt_time = event.time
            checkpoint = _CHECKPOINT_STEP.search(event.resumed_from or "")
            self._resume_step = int(checkpoint.group(1)) if checkpoint else None
            self._resuming = bool(self.stage_starts)  # the same events file, a new worker
            self.name, self.active, self.stages = event.name, dict(event.active), list(event.stages)
            self.finished = self.failed = None  # a resumed run carries on after its earlier end
        elif isinstance(event, StageStarted):
            self._stage_started(event)
            self.stage, self.technique, self.max_steps = event.stage, event.technique, event.max_steps
            self.step, self.stage_data, self._stage_clock = self._resume_step or 0, event.data, None
            self._resume_step = None
            self.active.update(event.active)
        elif isinstance(event, Metrics):
            self._metrics(event)
        elif isinstance(event, Progress):
            self._advance(event)
        elif isinstance(event, Eval):
            for key, value in event.values.items():
                self._add(f"eval:{key}", event.step, value)
        elif isinstance(event, Sample):
            self._sample(event)
        elif isinstance(event, Checkpoint):
            self.checkpoints.append(event.path)
            self.marks.append(Mark(self.stage_starts.get(event.stage, 0.0) + event.step, "checkpoint", event.stage))
        elif isinstance(event, Curated):
            self.curated[event.stage] = event
        elif isinstance(event, StageFinished):
            self.step, self.technique = event.step, event.technique
        elif isinstance(event, RunFinished):
            self.finished = event
            if event.status == "stopped":
                self.marks.append(Mark(self._global(event.step), "stopped", self.stage))
        elif isinstance(event, RunFailed):
            self.failed = event

    def _sample(self, event: Sample) -> None:
        if event.label == "before":
            self._before[event.stage] = event
        elif event.label == "after" and (before := self._before.pop(event.stage, None)) is not None:
            self.comparisons.setdefault(event.stage, []).append((event.prompt, before.completion, event.completion))
        else:
            self.samples.append(event)

    def _stage_started(self, event: StageStarted) -> None:
        if event.stage not in self.stage_starts:  # a resumed stage keeps its place on the axis
            start = self._global(self.step) if self.stage_starts else 0.0  # where the last stage's steps ended
            self.stage_starts[event.stage] = start
            self.marks.append(Mark(start, "stage", event.stage, f"{event.stage + 1} {event.technique}"))
        if self._resuming:
            self.marks.append(Mark(self.stage_starts[event.stage] + (self._resume_step or 0), "resumed", event.stage))
            self._resuming = False

    def _global(self, step: int) -> float:
        return self.stage_starts.get(self.stage, 0.0) + step

    def _add(self, key: str, step: int, value: float) -> None:
        points = self.stage_series.setdefault(self.stage, {}).setdefault(key, [])
        x = self._global(step)
        while points and points[-1][0] >= x:  # steps done again after a resume replace the first try's
            points.pop()
        points.append((x, float(value)))

    def _advance(self, event: Metrics | Progress) -> None:
        """The step reached, and the clock this stage's pace is measured on."""
        self.step, self.max_steps = event.step, event.max_steps
        if self._stage_clock is None:
            self._stage_clock = (event.time, event.step)
        self._last_time = event.time

    def _metrics(self, event: Metrics) -> None:
        self._advance(event)
        self.last = event.values
        for key, value in event.values.items():
            self._add(f"train:{key}", event.step, value)
        if "reward" in self.last and "reward_std" in self.last:
            mean, std = self.last["reward"], self.last["reward_std"]
            self._add("train:reward+std", event.step, mean + std)
            self._add("train:reward-std", event.step, mean - std)

    def steps_per_s(self) -> float | None:
        """This stage's pace since its first reported step (so the preflight and the model load, which
        happen once, do not count as training pace)."""
        if self._stage_clock is None:
            return None
        start, first = self._stage_clock
        done, took = self.step - first, self._last_time - start
        return done / took if done > 0 and took > 0 else None

    def eta_s(self) -> float | None:
        """Seconds left in this stage at its pace so far."""
        pace = self.steps_per_s()
        if pace is None or self.ended:
            return None
        return max(0, self.max_steps - self.step) / pace

    def elapsed_s(self) -> float | None:
        """Time since this attempt's run_started, to the latest event (a replay says the same)."""
        return None if self._attempt_time is None else self._latest_time - self._attempt_time

    def memory_gb(self) -> float | None:
        """The peak memory figure shown: CUDA allocated on a GPU, the process's peak RSS on a CPU."""
        return self.last.get("memory_allocated_gb", self.last.get("memory_rss_gb"))

    def status_parts(self) -> list[str]:
        """ETA, throughput and memory, in the words both front ends print."""
        return [part for part in (self.eta_text(), self.throughput_text(), self.memory_text()) if part]

    def eta_text(self) -> str:
        eta = self.eta_s()
        return f"ETA {format_duration(eta) if eta is not None else '--:--'}"

    def throughput_text(self) -> str | None:
        tokens = self.last.get("tokens_per_second")
        return None if tokens is None else f"{tokens:,.0f} tok/s"

    def memory_text(self) -> str | None:
        mem = self.memory_gb()
        return None if mem is None else f"mem {mem:.1f} GiB"

    def pace_text(self) -> str | None:
        """Elapsed time and steps per second."""
        elapsed, pace = self.elapsed_s(), self.steps_per_s()
        if elapsed is None:
            return None
        return f"elapsed {format_duration(elapsed)}" + (f"  {pace:.3g} steps/s" if pace is not None else "")

    def gpu_text(self) -> str | None:
        """The GPU's live figures (NVML, from the latest metrics event): utilisation, memory used of total,
        temperature; None where the worker could not read them (no CUDA, no nvidia-ml-py)."""
        v = self.last
        if "gpu_util_pct" not in v:
            return None
        memory = f" {v['gpu_mem_used_gb']:.1f}/{v['gpu_mem_total_gb']:.1f} GiB" if "gpu_mem_total_gb" in v else ""
        temperature = f" {v['gpu_temp_c']:.0f}°C" if "gpu_temp_c" in v else ""
        return f"GPU {v['gpu_util_pct']:.0f}%{memory}{temperature}"

    def auto_class(self) -> str:
        """The PEFT class that loads this run's result."""
        technique = FACTS.get(self.technique)
        return technique.auto_class if technique else "AutoPeftModelForCausalLM"

    def next_step(self) -> str:
        technique = FACTS.get(self.technique)
        return technique.next_step if technique else ""


def load_state(events: list[Event], name: str = "") -> RunState:
    state = RunState(name=name)
    for event in events:
        state.feed(event)
    state.name = name or state.name
    return state


def curated_lines(event: Curated) -> list[str]:
    """What a curate stage kept, in words: the console's and the app's lines."""
    sc = event.scores
    dist = (f"mean {sc['mean']:.3g} (min {sc['min']:.3g}, p25 {sc['p25']:.3g}, median {sc['median']:.3g}, "
            f"p75 {sc['p75']:.3g}, max {sc['max']:.3g})") if sc else "none"  # fmt: skip
    return [
        f"curated {event.prompts} prompts x {event.samples} answers; scores {dist}",
        f"  best-of-{event.samples} SFT rows: {event.sft_rows} kept, {event.below_min_score} below curate.min_score",
        f"  pairs (best vs worst): {event.pairs} kept, {event.no_spread} dropped without spread (all answers scored "
        f"alike), {event.below_margin} within curate.min_margin",
        f"  in {event.folder}",
    ]

