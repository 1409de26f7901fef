"""Past runs under `runs/`: what the home screen lists (name, technique, model, status, last metrics, when).

Reads each run's config.toml (as plain TOML, not validated: an old run must still be listed) and
the tail of its events.jsonl (through smoltrain/rundir.py). Never imports torch or textual.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrain.engine.events import Event, Metrics, RunFailed, RunFinished, RunStarted
from smoltrain.rundir import RunDir, read_tail, running_worker

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass
class RunInfo:
    name: str
    path: Path
    technique: str
    model: str
    status: str  # completed | stopped | failed | running | interrupted | not started
    when: float  # when the run folder was made (config.toml's mtime)
    last: dict[str, float] = field(default_factory=dict)  # the last metrics event's values
    step: int = 0
    max_steps: int = 0

    @property
    def events_path(self) -> Path:
        return RunDir(self.path).events

    def last_metrics_text(self) -> str:
        """'step 40/100  loss 0.213' or '-', for one table cell."""
        parts = [f"step {self.step}/{self.max_steps}"] if self.max_steps else []
        for key in ("loss", "reward", "rewards/accuracies", "accuracy"):
            if key in self.last:
                parts.append(f"{key.split('/')[-1]} {self.last[key]:.4g}")
                break
        return "  ".join(parts) or "-"

    def when_text(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.when))


def _describe_config(raw: dict[str, Any]) -> tuple[str, str]:
    model = str(raw.get("model", {}).get("name_or_path", "?"))
    stages = raw.get("stages") or []
    if stages:
        technique = " > ".join(str(s.get("technique", "?")) for s in stages if isinstance(s, dict))
    else:
        technique = str(raw.get("train", {}).get("technique", "sft"))
    return technique, model


def run_status(events: list[Event], run_dir: Path) -> str:
    """How the run's latest session ended; a resumed run that trains now is "running", not its
    earlier "stopped", and one that ended without an end event (killed) is "interrupted"."""
    if running_worker(run_dir) is not None:
        return "running"
    for event in reversed(events):
        if isinstance(event, RunFinished):
            return event.status
        if isinstance(event, RunFailed):
            return "failed"
        if isinstance(event, RunStarted):
            break  # this session never ended: the worker was killed
    return "interrupted" if RunDir(run_dir).events.exists() else "not started"


def read_run(path: Path) -> RunInfo | None:
    run = RunDir(path)
    config = run.config
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
        when = config.stat().st_mtime
    except (OSError, tomllib.TOMLDecodeError):
        return None
    technique, model = _describe_config(raw)
    events = read_tail(run.events)
    info = RunInfo(path.name, path, technique, _short_model(model), run_status(events, path), when)
    last = next((e for e in reversed(events) if isinstance(e, Metrics)), None)
    if last is not None:
        info.last, info.step, info.max_steps = last.values, last.step, last.max_steps
    return info


def display_path(path: Path) -> str:
    """A path relative to the working folder when it is inside it: shorter, and the same on every machine."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _short_model(model: str) -> str:
    """Local folders by their last two parts: absolute paths would crowd out the other columns."""
    path = Path(model)
    return str(Path(*path.parts[-2:])) if path.is_absolute() else model


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run folder (one holding a config.toml), newest first."""
    if not runs_dir.is_dir():
        return []
    runs = [info for p in runs_dir.iterdir() if p.is_dir() and (info := read_run(p)) is not None]
    return sorted(runs, key=lambda r: r.when, reverse=True)
