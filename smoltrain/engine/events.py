"""Typed events: the only thing the training worker tells the front ends.

The worker appends one JSON object per line to `runs/<name>/events.jsonl`; the runner tails
that file and both front ends (headless, TUI) render the parsed events. Every event has
`type` and `time`. A metrics event is flat: `step`, `max_steps` and TRL's logged values under
TRL's own names (loss, learning_rate, grad_norm, rewards/margins, ...), plus tokens_per_second
and memory figures where known.

Imports pydantic and the stdlib only: the runner and the TUI parse events without torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: float = Field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    run_dir: str
    name: str
    model: str
    device: str
    dtype: str
    stages: list[str]
    # What is really active, and why: {"4bit": "on (nf4, double quant)", "liger": "off: no CUDA", ...}
    active: dict[str, str]
    trainable_params: int
    total_params: int
    resumed_from: str | None = None


class StageStarted(_Event):
    type: Literal["stage_started"] = "stage_started"
    stage: int
    technique: str
    model: str = ""  # what this stage starts from: the base, or the previous stage's merged result
    active: dict[str, str] = Field(default_factory=dict)
    max_steps: int
    train_rows: int
    eval_rows: int
    data: str  # one-line data report: rows read, kept, dropped and why


class _StepValues(_Event):
    """Metrics and eval events carry TRL's logged values as extra top-level keys."""

    model_config = ConfigDict(extra="allow")
    step: int
    max_steps: int
    stage: int = 0

    @property
    def values(self) -> dict[str, float]:
        return {k: v for k, v in (self.model_extra or {}).items() if isinstance(v, (int, float))}


class Metrics(_StepValues):
    type: Literal["metrics"] = "metrics"


class Eval(_StepValues):
    type: Literal["eval"] = "eval"


class Sample(_Event):
    type: Literal["sample"] = "sample"
    step: int
    stage: int = 0
    prompt: str
    completion: str
    reward: float | None = None  # the weighted total
    rewards: dict[str, float] = Field(default_factory=dict)  # each reward function's score
    label: str = ""  # e.g. "best" or "worst" of the step's group


class Checkpoint(_Event):
    type: Literal["checkpoint"] = "checkpoint"
    step: int
    stage: int = 0
    path: str


class Warning(_Event):
    type: Literal["warning"] = "warning"
    message: str
    hint: str = ""
    step: int | None = None


class StageFinished(_Event):
    type: Literal["stage_finished"] = "stage_finished"
    stage: int
    technique: str
    step: int
    output_dir: str


class RunFinished(_Event):
    type: Literal["run_finished"] = "run_finished"
    status: Literal["completed", "stopped"]
    step: int
    final_dir: str | None = None  # None: no adapter saved at the end (stopped at once, or nothing trained)
    duration_s: float


class RunFailed(_Event):
    type: Literal["run_failed"] = "run_failed"
    error_type: str
    message: str
    hint: str = ""
    user_error: bool
    traceback: str | None = None


Event = Annotated[
    RunStarted | StageStarted | Metrics | Eval | Sample | Checkpoint | Warning | StageFinished | RunFinished | RunFailed,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES = (
    "run_started", "stage_started", "metrics", "eval", "sample",
    "checkpoint", "warning", "stage_finished", "run_finished", "run_failed",
)  # fmt: skip

Emit = Callable[[_Event], None]


def parse_event(line: str | dict[str, Any]) -> Event:
    """One events.jsonl line (or its dict) -> the typed event. Raises pydantic.ValidationError."""
    if isinstance(line, str):
        return _ADAPTER.validate_json(line)
    return _ADAPTER.validate_python(line)


def read_events(path: Path) -> list[Event]:
    """All complete events of a finished or running run; a torn last line is skipped."""
    events: list[Event] = []
    if not path.exists():
        return events
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                events.append(parse_event(line))
            except ValueError:
                continue  # a line being written right now, or from a newer smoltrain
    return events


class EventWriter:
    """Appends events to events.jsonl, one flushed line each, so a reader never waits on a buffer."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def __call__(self, event: _Event) -> None:
        self._file.write(event.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def tail_events(path: Path, poll: Callable[[], bool], interval: float = 0.1) -> Iterator[Event]:
    """Yield events as they are appended to `path` while `poll()` says the writer is alive,
    then whatever remains. Partial lines wait for their newline."""
    offset = 0
    pending = b""
    while True:
        alive = poll()
        if path.exists():
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read()
            offset += len(chunk)
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.strip():
                    try:
                        yield parse_event(line.decode("utf-8"))
                    except ValueError:
                        continue
        if not alive:
            return
        time.sleep(interval)
