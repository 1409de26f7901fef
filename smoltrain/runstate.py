"""The run state: every event of a run folded into what a front end shows (progress, ETA, memory,
curves, samples, how it ended, what to do next). The one fold both front ends render: the headless
printer's bar and the app's header say the same ETA and memory figure because they read it here.

One RunState per run, fed every event in order (live from a tail, or all at once from a finished
run's events.jsonl). Pipelines have several stages; their steps are laid end to end on one x axis so
a pipeline's curves read left to right. Times come from the events, not the clock, so a replayed
file gives the same figures as the live run.

Pure Python (stdlib, smoltrain.engine.events, smoltrain.config.techniques): never torch or textual.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from smoltrain.config.techniques import FACTS
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
)  # fmt: skip

SAMPLES_KEPT = 20  # the best and worst of the last ~10 logged steps


def format_duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


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
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    samples: deque[Sample] = field(default_factory=lambda: deque(maxlen=SAMPLES_KEPT))
    checkpoints: list[str] = field(default_factory=list)
    # Each policy stage's held-out prompts answered before and after it: stage -> [(prompt, before, after)].
    comparisons: dict[int, list[tuple[str, str, str]]] = field(default_factory=dict)
    finished: RunFinished | None = None
    failed: RunFailed | None = None
    _offset: int = 0  # global step where the current stage began
    _stage_clock: tuple[float, int] | None = None  # (time, step) of the stage's first metrics event
    _last_time: float = 0.0  # the latest metrics event's time
    _before: dict[int, Sample] = field(default_factory=dict)  # a "before" answer waiting for its "after"

    @property
    def ended(self) -> bool:
        return self.finished is not None or self.failed is not None

    def feed(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self.name, self.active, self.stages = event.name, dict(event.active), list(event.stages)
            self.finished = self.failed = None  # a resumed run carries on after its earlier end
        elif isinstance(event, StageStarted):
            self._offset = max(self._offset, self._global(self.step)) if event.stage else 0
            self.stage, self.technique, self.max_steps = event.stage, event.technique, event.max_steps
            self.step, self.stage_data, self._stage_clock = 0, event.data, None
            self.active.update(event.active)
        elif isinstance(event, Metrics):
            self._metrics(event)
        elif isinstance(event, Eval):
            for key, value in event.values.items():
                self._add(f"eval:{key}", event.step, value)
        elif isinstance(event, Sample):
            self._sample(event)
        elif isinstance(event, Checkpoint):
            self.checkpoints.append(event.path)
        elif isinstance(event, StageFinished):
            self.step, self.technique = event.step, event.technique
        elif isinstance(event, RunFinished):
            self.finished = event
        elif isinstance(event, RunFailed):
            self.failed = event

    def _sample(self, event: Sample) -> None:
        if event.label == "before":
            self._before[event.stage] = event
        elif event.label == "after" and (before := self._before.pop(event.stage, None)) is not None:
            self.comparisons.setdefault(event.stage, []).append((event.prompt, before.completion, event.completion))
        else:
            self.samples.append(event)

    def _global(self, step: int) -> int:
        return self._offset + step

    def _add(self, key: str, step: int, value: float) -> None:
        self.series.setdefault(key, []).append((float(self._global(step)), float(value)))

    def _metrics(self, event: Metrics) -> None:
        self.step, self.max_steps, self.last = event.step, event.max_steps, event.values
        if self._stage_clock is None:
            self._stage_clock = (event.time, event.step)
        for key, value in event.values.items():
            self._add(f"train:{key}", event.step, value)
        if "reward" in self.last and "reward_std" in self.last:
            mean, std = self.last["reward"], self.last["reward_std"]
            self._add("train:reward+std", event.step, mean + std)
            self._add("train:reward-std", event.step, mean - std)
        self._last_time = event.time

    def eta_s(self) -> float | None:
        """Seconds left in this stage, from the pace since its first logged step (so the preflight and
        the model load, which happen once, do not count as training pace)."""
        if self._stage_clock is None or self.ended:
            return None
        start, first = self._stage_clock
        done = self.step - first
        if done <= 0:
            return None
        return (self._last_time - start) / done * max(0, self.max_steps - self.step)

    def memory_gb(self) -> float | None:
        """The peak memory figure shown: CUDA allocated on a GPU, the process's peak RSS on a CPU."""
        return self.last.get("memory_allocated_gb", self.last.get("memory_rss_gb"))

    def status_parts(self) -> list[str]:
        """ETA, throughput and memory, in the words both front ends print."""
        eta = self.eta_s()
        parts = [f"ETA {format_duration(eta) if eta is not None else '--:--'}"]
        if "tokens_per_second" in self.last:
            parts.append(f"{self.last['tokens_per_second']:,.0f} tok/s")
        if (mem := self.memory_gb()) is not None:
            parts.append(f"mem {mem:.1f} GB")
        return parts

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
