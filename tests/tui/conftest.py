"""Fixtures for the terminal app's tests: recorded runs in a temporary runs/ folder, an app on it.

The recorded events files (data/) come from real runs of the demo presets on the tiny model: a
pipeline SFT -> GRPO that finished, and a DPO run caught mid-way.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from smoltrain.tui.app import SmoltrainApp

DATA = Path(__file__).parent / "data"
RECORDED = {"grpo-pipeline": "2026-11-20 10:00", "dpo-partial": "2026-11-20 11:00"}


def install_run(runs: Path, recording: str, events: bool = True) -> Path:
    """A run folder made from a recording, with a fixed date (the home screen shows it)."""
    run_dir = runs / recording
    run_dir.mkdir(parents=True)
    shutil.copy(DATA / f"{recording}.config.toml", run_dir / "config.toml")
    if events:
        shutil.copy(DATA / f"{recording}.events.jsonl", run_dir / "events.jsonl")
    stamp = 1795200000 + 3600 * list(RECORDED).index(recording)
    for path in run_dir.iterdir():
        os.utime(path, (stamp, stamp))
    return run_dir


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder, and an empty user preset folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMOLTRAIN_PRESETS", str(tmp_path / "my-presets"))
    monkeypatch.setenv("TZ", "UTC")
    return tmp_path


@pytest.fixture
def recorded_runs(workdir: Path) -> Path:
    runs = workdir / "runs"
    for recording in RECORDED:
        install_run(runs, recording)
    return runs


@pytest.fixture
def app(recorded_runs: Path) -> SmoltrainApp:
    return SmoltrainApp(runs_dir="runs")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

