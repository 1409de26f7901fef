"""Typed events: the only thing the training worker tells the front ends.

The worker appends one JSON object per line to `runs/<name>/events.jsonl` (written and read by
smoltrain/rundir.py, the run folder's owner); both front ends (headless, TUI) render the parsed events. Every event has
`type` and `time`. A metrics event is flat: `step`, `max_steps` and TRL's logged values under
TRL's own names (loss, learning_rate, grad_norm, rewards/margins, ...), plus tokens_per_second
and memory figures where known (the run's own peak; on CUDA with nvidia-ml-py also the GPU's live
gpu_util_pct, gpu_mem_used_gb, gpu_mem_total_gb, gpu_temp_c). A progress event is smaller: the step
reached between logs (about once a second), so a front end's bar moves while the curves wait for the next log.

Imports pydantic and the stdlib only: the runner and the TUI parse events without torch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    time: float = Field(default_factory=time.time)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", exclude_none=True), ensure_ascii=False)


class RunStarted(EventBase):
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
    processes: int = 1  # training processes, one per GPU ([distributed] gpus)
    strategy: str = "single"  # how they share the work: single, ddp, fsdp, deepspeed-zero2/3
    effective_batch: int | None = None  # micro-batch x accumulation x processes


class StageStarted(EventBase):
    type: Literal["stage_started"] = "stage_started"
    stage: int
    technique: str
    model: str = ""  # what this stage starts from: the base, or the previous stage's merged result
    active: dict[str, str] = Field(default_factory=dict)
    max_steps: int
    train_rows: int
    eval_rows: int
    data: str  # one-line data report: rows read, kept, dropped and why


class _StepValues(EventBase):
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


class Progress(EventBase):
    """The step training has reached, between logs: at training's begin (a resumed stage's step), then
    at most about once a second and at the last step. No values: the curves come from metrics events."""

    type: Literal["progress"] = "progress"
    step: int
    max_steps: int
    stage: int = 0


class Sample(EventBase):
    type: Literal["sample"] = "sample"
    step: int
    stage: int = 0
    prompt: str
    completion: str
    reward: float | None = None  # the weighted total
    rewards: dict[str, float] = Field(default_factory=dict)  # each reward function's score
    label: str = ""  # e.g. "best" or "worst" of the step's group


class Checkpoint(EventBase):
    type: Literal["checkpoint"] = "checkpoint"
    step: int
    stage: int = 0
    path: str


class Warning(EventBase):
    type: Literal["warning"] = "warning"
    message: str
    hint: str = ""
    step: int | None = None
    # "library": TRL's, transformers' or PEFT's own words (engine/library_warnings.py), shown in the
    # log but not raised as a notice: they are about the libraries more often than about the run.
    source: Literal["smoltrain", "library"] = "smoltrain"


class EvalResult(EventBase):
    """A model scored by evaluation ([eval] or smoltrain eval): every item's score is in `path`
    (eval/<subject>.json, read by smoltrain/evalresults.py); `scores` holds the means for a log line."""

    type: Literal["eval_result"] = "eval_result"
    subject: str  # "base" or a stage's name
    path: str
    scores: dict[str, float]  # "task · metric" (and "judge · task vs other") -> mean


class Curated(EventBase):
    """What a curate stage kept: its score distribution and counts, for the console, the app and a script."""

    type: Literal["curated"] = "curated"
    stage: int = 0
    prompts: int
    samples: int  # answers per prompt
    scores: dict[str, float]  # the answers' total reward: mean, min, p25, median, p75, max
    sft_rows: int  # best answers kept (at least curate.min_score)
    below_min_score: int  # prompts whose best answer scored under it
    pairs: int  # best-vs-worst pairs kept
    no_spread: int  # prompts whose answers all scored the same: no preference to learn
    below_margin: int  # pairs whose score gap was not above curate.min_margin
    folder: str  # where sft.jsonl, pairs.jsonl and every answer (groups.jsonl) are


class StageFinished(EventBase):
    type: Literal["stage_finished"] = "stage_finished"
    stage: int
    technique: str
    step: int
    output_dir: str


class RunFinished(EventBase):
    type: Literal["run_finished"] = "run_finished"
    status: Literal["completed", "stopped"]
    step: int
    final_dir: str | None = None  # None: no adapter saved at the end (stopped at once, or nothing trained)
    duration_s: float
    # Stopped at once (a second Ctrl-C): the step training had reached; `step` is then the last
    # complete checkpoint's, where a resume continues.
    stopped_at: int | None = None


class RunFailed(EventBase):
    type: Literal["run_failed"] = "run_failed"
    error_type: str
    message: str
    hint: str = ""
    user_error: bool
    traceback: str | None = None


Event = Annotated[
    RunStarted | StageStarted | Metrics | Eval | Progress | Sample | Checkpoint | Warning | EvalResult | Curated
    | StageFinished | RunFinished | RunFailed,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
EVENT_TYPES = (
    "run_started", "stage_started", "metrics", "eval", "progress", "sample",
    "checkpoint", "warning", "eval_result", "curated", "stage_finished", "run_finished", "run_failed",
)  # fmt: skip

Emit = Callable[[EventBase], None]


def parse_event(line: str | dict[str, Any]) -> Event:
    """One events.jsonl line (or its dict) -> the typed event. Raises pydantic.ValidationError."""
    if isinstance(line, str):
        return _ADAPTER.validate_json(line)
    return _ADAPTER.validate_python(line)
