"""Run state built from events: the curves, the progress, what is active, the recent samples.

One RunState per run, fed every event in order (live from the run screen's tail, or all at once
from a finished run's events.jsonl). Pipelines have several stages; their steps are laid end to end
on one x axis so a pipeline's curves read left to right. `panels()` says which plots have data.

Pure Python (stdlib and smoltrain.engine.events): never imports torch or textual.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field

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

_REWARD_FN = re.compile(r"^rewards/(.+)/mean$")
SAMPLES_KEPT = 20  # the best and worst of the last ~10 logged steps


@dataclass(frozen=True)
class Line:
    label: str
    xs: list[float]
    ys: list[float]


@dataclass(frozen=True)
class Panel:
    title: str
    lines: list[Line]


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
    finished: RunFinished | None = None
    failed: RunFailed | None = None
    _offset: int = 0  # global step where the current stage began
    _stage_clock: tuple[float, int] | None = None  # (wall time, step) of the stage's first metrics
    _last_time: float = 0.0  # the latest metrics event's time

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
            self.samples.append(event)
        elif isinstance(event, Checkpoint):
            self.checkpoints.append(event.path)
        elif isinstance(event, StageFinished):
            self.step = event.step
        elif isinstance(event, RunFinished):
            self.finished = event
        elif isinstance(event, RunFailed):
            self.failed = event

    def _global(self, step: int) -> int:
        return self._offset + step

    def _add(self, key: str, step: int, value: float) -> None:
        self.series.setdefault(key, []).append((float(self._global(step)), float(value)))

    def _metrics(self, event: Metrics) -> None:
        self.step, self.max_steps, self.last = event.step, event.max_steps, event.values
        if self._stage_clock is None:
            # The event's own time, not ours: a replayed file must give the same ETA as the live run.
            self._stage_clock = (event.time, event.step)
        for key, value in event.values.items():
            self._add(f"train:{key}", event.step, value)
        if "reward" in self.last and "reward_std" in self.last:
            mean, std = self.last["reward"], self.last["reward_std"]
            self._add("train:reward+std", event.step, mean + std)
            self._add("train:reward-std", event.step, mean - std)
        self._last_time = event.time

    def eta_s(self) -> float | None:
        """Seconds left in this stage, from the pace since its first logged step."""
        if self._stage_clock is None or self.ended:
            return None
        start, first = self._stage_clock
        done = self.step - first
        if done <= 0:
            return None
        elapsed = self._last_time - start
        return elapsed / done * max(0, self.max_steps - self.step)

    def memory_gb(self) -> float | None:
        return self.last.get("memory_allocated_gb", self.last.get("memory_rss_gb"))

    def _line(self, label: str, key: str) -> Line | None:
        points = self.series.get(key)
        if not points:
            return None
        return Line(label, [x for x, _ in points], [y for _, y in points])

    def _panel(self, title: str, pairs: list[tuple[str, str]]) -> Panel | None:
        lines = [line for label, key in pairs if (line := self._line(label, key)) is not None]
        return Panel(title, lines) if lines else None

    def panels(self) -> list[Panel]:
        """The plots this run has data for, most telling first."""
        reward_fns = sorted(m.group(1) for k in self.series if (m := _REWARD_FN.match(k.removeprefix("train:"))))
        wanted = [
            ("loss", [("train", "train:loss"), ("eval", "eval:eval_loss")]),
            ("reward mean ± std", [("mean", "train:reward"), ("+std", "train:reward+std"), ("-std", "train:reward-std")]),
            ("reward per function", [(fn, f"train:rewards/{fn}/mean") for fn in reward_fns]),
            ("DPO margin", [("train", "train:rewards/margins"), ("eval", "eval:eval_rewards/margins")]),
            ("DPO accuracy", [("train", "train:rewards/accuracies"), ("eval", "eval:eval_rewards/accuracies")]),
            ("reward model accuracy", [("train", "train:accuracy"), ("eval", "eval:eval_accuracy")]),
            ("learning rate", [("lr", "train:learning_rate")]),
            ("grad norm", [("grad norm", "train:grad_norm")]),
        ]
        return [panel for title, pairs in wanted if (panel := self._panel(title, pairs)) is not None]


def overlay(a: RunState, b: RunState) -> list[Panel]:
    """Two runs' plots drawn together: every panel either has, each line labelled by its run."""
    by_title: dict[str, list[Line]] = {}
    for state in (a, b):
        for panel in state.panels():
            if panel.title == "reward mean ± std":  # the spread of two runs is unreadable together
                panel = Panel(panel.title, panel.lines[:1])
            by_title.setdefault(panel.title, []).extend(
                Line(f"{state.name}: {line.label}", line.xs, line.ys) for line in panel.lines
            )
    return [Panel(title, lines) for title, lines in by_title.items()]


def load_state(events: list[Event], name: str = "") -> RunState:
    state = RunState(name=name)
    for event in events:
        state.feed(event)
    state.name = name or state.name
    return state
