"""Past runs under `runs/`: what the home screen lists (name, technique, model, status, last metrics,
how long it took, when), read again cheaply every few seconds; and deleting or renaming a run's folder.

Reads each run's config.toml (as plain TOML, not validated: an old run must still be listed) and
the tail of its events.jsonl (through smoltrain/rundir.py); `RunList` parses a run again only when
one of those two files changed. Never imports torch or textual.

A renamed (moved) run keeps working: the worker, resume, chat and export take the run folder from
where it is now (a pipeline's merged/ recorded by absolute path is found again inside the moved
folder); only old events' `run_dir` and config.toml's `output_dir` and `name` keep the old values,
and nothing reads them back to find the folder.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrain.engine.events import Event, Metrics, RunFailed, RunFinished, RunStarted, parse_event
from smoltrain.errors import SmoltrainError
from smoltrain.rundir import RunDir, format_bytes, read_tail, running_worker
from smoltrain.runstate import format_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

STATUSES = ("running", "completed", "stopped", "failed", "interrupted", "not started")


@dataclass
class RunInfo:
    name: str
    path: Path
    techniques: list[str]  # one per stage
    model: str
    ended: str  # how its latest session ended, by its events: completed | stopped | failed | interrupted | not started
    when: float  # when the run folder was made (config.toml's mtime)
    last: dict[str, float] = field(default_factory=dict)  # the last metrics event's values
    step: int = 0
    max_steps: int = 0
    duration_s: float | None = None
    status: str = ""  # `ended`, or "running" while a worker trains it (asked anew on every read)

    @property
    def events_path(self) -> Path:
        return RunDir(self.path).events

    @property
    def technique(self) -> str:
        """'dpo', or a pipeline's stages as 'sft>grpo'."""
        return ">".join(self.techniques)

    def last_metrics_text(self) -> str:
        """'40/100 loss 0.213' or '-', for one table cell."""
        parts = [f"{self.step}/{self.max_steps}"] if self.max_steps else []
        for key in ("loss", "reward", "rewards/accuracies", "accuracy"):
            if key in self.last:
                parts.append(f"{key.split('/')[-1]} {self.last[key]:.3g}")
                break
        return " ".join(parts) or "-"

    def duration_text(self) -> str:
        return "-" if self.duration_s is None else format_duration(self.duration_s)

    def when_text(self, now: float | None = None, with_time: bool = True) -> str:
        """'5m ago' within the day, else 'Nov 20 10:00' ('Nov 20' without the time) this year, or '2025-11-20'."""
        now = time.time() if now is None else now
        ago = now - self.when
        if 0 <= ago < 60:
            return "just now"
        if 0 <= ago < 3600:
            return f"{int(ago // 60)}m ago"
        if 0 <= ago < 86400:
            return f"{int(ago // 3600)}h ago"
        made = time.localtime(self.when)
        if made.tm_year != time.localtime(now).tm_year:
            return time.strftime("%Y-%m-%d", made)
        return time.strftime("%b %d %H:%M" if with_time else "%b %d", made)

    def matches(self, wanted: str) -> bool:
        """Whether a filter ("all", a status, or a technique) lets this run through."""
        return wanted in ("all", self.status) or wanted in self.techniques


def _describe_config(raw: dict[str, Any]) -> tuple[list[str], str]:
    model = str(raw.get("model", {}).get("name_or_path", "?"))
    stages = raw.get("stages") or []
    if stages:
        techniques = [str(s.get("technique", "?")) for s in stages if isinstance(s, dict)]
    else:
        techniques = [str(raw.get("train", {}).get("technique", "sft"))]
    return techniques, model


def _session_end(events: list[Event], has_events: bool) -> str:
    for event in reversed(events):
        if isinstance(event, RunFinished):
            return event.status
        if isinstance(event, RunFailed):
            return "failed"
        if isinstance(event, RunStarted):
            break  # this session never ended: the worker was killed
    return "interrupted" if has_events else "not started"


def run_status(events: list[Event], run_dir: Path) -> str:
    """How the run's latest session ended; a resumed run that trains now is "running", not its
    earlier "stopped", and one that ended without an end event (killed) is "interrupted"."""
    if running_worker(run_dir) is not None:
        return "running"
    return _session_end(events, RunDir(run_dir).events.exists())


def _first_event_time(path: Path) -> float | None:
    try:
        with path.open("rb") as file:
            return parse_event(file.readline().decode("utf-8")).time
    except (OSError, ValueError):
        return None


def _duration(events: list[Event], events_path: Path) -> float | None:
    """The latest session's run_finished duration_s; else its first to its last event (still training, or killed)."""
    if events and isinstance(events[-1], RunFinished):
        return events[-1].duration_s
    began = next((e.time for e in reversed(events) if isinstance(e, RunStarted)), None)
    if began is None:
        began = _first_event_time(events_path)  # the session's start is older than the tail
    return events[-1].time - began if events and began is not None else None


def read_run(path: Path) -> RunInfo | None:
    run = RunDir(path)
    config = run.config
    try:
        raw = tomllib.loads(config.read_text(encoding="utf-8"))
        when = config.stat().st_mtime
    except (OSError, tomllib.TOMLDecodeError):
        return None
    techniques, model = _describe_config(raw)
    events = read_tail(run.events)
    info = RunInfo(path.name, path, techniques, _short_model(model), _session_end(events, run.events.exists()), when,
                   duration_s=_duration(events, run.events))  # fmt: skip
    info.status = "running" if running_worker(path) is not None else info.ended
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
    """A local folder by its last part and a hub id without its owner: a long name would crowd out the other
    columns (the run screen shows the whole of it)."""
    return Path(model).name or model


def _stamp(run: RunDir) -> tuple[int, ...]:
    """What changes when a run's listing could: its config.toml, and its events file's size and mtime."""
    stamp: tuple[int, ...] = ()
    for path in (run.config, run.events):
        try:
            stat = path.stat()
            stamp += (stat.st_mtime_ns, stat.st_size)
        except OSError:
            stamp += (-1, -1)
    return stamp


class RunList:
    """Every run folder under `runs_dir` (one holding a config.toml), newest first, read again cheaply:
    a run whose files did not change is not parsed again; only whether a worker trains it is asked anew."""

    def __init__(self, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self._seen: dict[Path, tuple[tuple[int, ...], RunInfo | None]] = {}

    def read(self) -> list[RunInfo]:
        folders = [p for p in self.runs_dir.iterdir() if p.is_dir()] if self.runs_dir.is_dir() else []
        seen: dict[Path, tuple[tuple[int, ...], RunInfo | None]] = {}
        for folder in folders:
            stamp = _stamp(RunDir(folder))
            known = self._seen.get(folder)
            if known is not None and known[0] == stamp:
                info = known[1]
                if info is not None:
                    info.status = "running" if running_worker(folder) is not None else info.ended
            else:
                info = read_run(folder)
            seen[folder] = (stamp, info)
        self._seen = seen
        return sorted((info for _, info in seen.values() if info is not None), key=lambda r: r.when, reverse=True)


def list_runs(runs_dir: Path) -> list[RunInfo]:
    """Every run folder (one holding a config.toml), newest first."""
    return RunList(runs_dir).read()


# --- managing run folders ---------------------------------------------------------------------------


def folder_size(path: Path) -> int:
    """Bytes on disk under `path` (files only; links not followed)."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def describe_size(path: Path) -> str:
    return format_bytes(folder_size(path))


def refuse_while_training(run: RunInfo, doing: str) -> None:
    pid = running_worker(run.path)
    if pid is not None:
        raise SmoltrainError(f"cannot {doing} {run.name}: it is training now (worker pid {pid})",
                             hint="stop it first (open it, then x), and wait until it has saved")  # fmt: skip


def delete_run(run: RunInfo) -> None:
    refuse_while_training(run, "delete")
    shutil.rmtree(run.path)


def rename_problem(run: RunInfo, new_name: str) -> str | None:
    """Why `new_name` cannot be the run's new folder name, or None."""
    if not new_name:
        return "give a name"
    if "/" in new_name or "\\" in new_name or new_name in (".", "..") or new_name.startswith("."):
        return "a name is one folder name: no '/' and no leading '.'"
    if new_name != run.name and (run.path.parent / new_name).exists():
        return f"{new_name} exists already in {display_path(run.path.parent)}/"
    return None


def rename_run(run: RunInfo, new_name: str) -> Path:
    """Move the run's folder to `new_name` beside it; returns the new path."""
    refuse_while_training(run, "rename")
    problem = rename_problem(run, new_name)
    if problem is not None:
        raise SmoltrainError(f"cannot rename {run.name} to {new_name!r}: {problem}")
    target = run.path.parent / new_name
    run.path.rename(target)
    return target
