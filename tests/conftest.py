"""Shared fixtures: the bundled tiny model and demo data, and a helper that runs a preset for real."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from smoltrain import runner
from smoltrain.config.load import load_config
from smoltrain.config.presets import PROJECT_ROOT
from smoltrain.engine.events import Eval, Event, Metrics
from smoltrain.rundir import read_events

TINY_MODEL = PROJECT_ROOT / "assets" / "tiny-llama"
DEMO_DATA = PROJECT_ROOT / "assets" / "data"


@dataclass
class FinishedRun:
    run_dir: Path
    exit_code: int
    events: list[Event]

    def of_type(self, kind: str) -> list[Event]:
        return [e for e in self.events if e.type == kind]

    def losses(self) -> list[float]:
        return [e.values["loss"] for e in self.events if isinstance(e, Metrics) and "loss" in e.values]

    def eval_losses(self) -> list[float]:
        return [e.values["eval_loss"] for e in self.events if isinstance(e, Eval) and "eval_loss" in e.values]


def _quiet(overrides: list[str]) -> list[str]:
    """The before/after answers cost seconds of generation per stage; the tests that check them ask for them."""
    return [] if any("compare_prompts" in o for o in overrides) else ["train.compare_prompts=0"]


def start_run(preset: Path, tmp_path: Path, overrides: list[str] = ()) -> runner.RunHandle:
    cfg = load_config(preset, [f"output_dir={tmp_path / 'runs'}", *_quiet(list(overrides)), *overrides])
    return runner.start(runner.create_run_dir(cfg, "test"))


def run_preset(preset: Path, tmp_path: Path, overrides: list[str] = ()) -> FinishedRun:
    """Run a preset through the real runner and worker process; return its exit code and events."""
    handle = start_run(preset, tmp_path, overrides)
    code = handle.wait()
    return FinishedRun(handle.run_dir, code, read_events(handle.events_path))


def train_in_process(preset: Path, tmp_path: Path, overrides: list[str] = ()) -> FinishedRun:
    """Run a preset through the engine in this process (no worker start-up: seconds saved per run, for
    the family matrix); the worker process around it has its own tests. Exit code as the worker's."""
    from smoltrain.engine.control import StopFlag
    from smoltrain.engine.events import RunFailed
    from smoltrain.engine.run import run
    from smoltrain.errors import SmoltrainError
    from smoltrain.rundir import EventWriter

    cfg = load_config(preset, [f"output_dir={tmp_path / 'runs'}", *_quiet(list(overrides)), *overrides])
    run_dir = runner.create_run_dir(cfg, "test")
    emit = EventWriter(run_dir / "events.jsonl")
    code = 0
    try:
        run(load_config(run_dir / "config.toml"), run_dir, emit, StopFlag())
    except SmoltrainError as exc:
        code = 2
        emit(RunFailed(**exc.to_dict(), user_error=True))
    finally:
        emit.close()
    return FinishedRun(run_dir, code, read_events(run_dir / "events.jsonl"))


@pytest.fixture
def sft_preset() -> Path:
    return PROJECT_ROOT / "presets" / "demo-sft.toml"


@pytest.fixture(scope="session")
def family_model(tmp_path_factory):
    """family_model("llama-3.2") -> the folder of that family's tiny random-weight model, built once a session."""
    from tests.families import build_family

    root = tmp_path_factory.mktemp("families")
    return lambda name: build_family(name, root)
