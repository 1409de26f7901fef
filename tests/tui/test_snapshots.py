"""Snapshots of the main screens at 80x24: home, a wizard step, a finished run's screen.

Update them after an intended change with: pytest tests/tui/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smoltrain.config import presets
from smoltrain.tui import draft
from smoltrain.tui.app import SmoltrainApp

pytest.importorskip("pytest_textual_snapshot")
SIZE = (80, 24)


FIXED_PRESETS = Path(__file__).parent / "data" / "presets"


@pytest.fixture
def snap_app(recorded_runs, monkeypatch) -> SmoltrainApp:
    # Home lists the built-in presets: show two frozen copies, so editing a shipped preset's
    # comment does not change the picture.
    monkeypatch.setattr(draft, "list_presets", lambda folder=FIXED_PRESETS: presets.list_presets(folder))
    return SmoltrainApp(runs_dir="runs")


def test_home_snapshot(snap_app, snap_compare):
    assert snap_compare(snap_app, terminal_size=SIZE)


def test_wizard_technique_snapshot(snap_app, snap_compare):
    assert snap_compare(snap_app, press=["n", "ctrl+n", "down", "down"], terminal_size=SIZE)


def test_run_screen_snapshot(snap_app, snap_compare, recorded_runs):
    async def open_run(pilot) -> None:
        pilot.app.open_run(recorded_runs / "grpo-pipeline")
        await pilot.pause(0.5)
        pilot.app.screen.action_tab("curves")
        await pilot.pause(0.3)

    assert snap_compare(snap_app, run_before=open_run, terminal_size=SIZE)
