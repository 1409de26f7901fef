"""Home: past runs with their status and last metrics; open one to see its curves; overlay two."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, OptionList

from smoltrain.tui.screens.compare import CompareScreen
from smoltrain.tui.screens.run import RunScreen
from smoltrain.tui.screens.wizard import WizardScreen
from smoltrain.tui.widgets.plots import PlotGrid

pytestmark = pytest.mark.anyio  # Pilot tests run on asyncio through anyio's pytest plugin


async def test_home_lists_runs_and_presets(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs", DataTable)
        rows = {table.get_row_at(i)[1]: table.get_row_at(i) for i in range(table.row_count)}
        assert set(rows) == {"grpo-pipeline", "dpo-partial"}
        assert str(rows["grpo-pipeline"][4]) == "completed"
        assert rows["grpo-pipeline"][2] == "sft > grpo"
        assert "step 10/10" in rows["grpo-pipeline"][5]
        assert str(rows["dpo-partial"][4]) == "interrupted"  # no end event, and no worker trains it
        start = app.screen.query_one("#start", OptionList)
        labels = [str(start.get_option_at_index(i).prompt) for i in range(start.option_count)]
        assert labels[0].startswith("+ New run")
        assert any(label.startswith("demo-sft") for label in labels)


async def test_open_a_past_run_shows_its_curves(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.screen.query_one("#runs", DataTable).focus()
        await pilot.press("down", "enter")  # newest first: dpo-partial, then grpo-pipeline
        await pilot.pause(0.5)
        assert isinstance(app.screen, RunScreen)
        assert app.screen.run_dir.name == "grpo-pipeline"
        assert "reward mean ± std" in app.screen.query_one(PlotGrid).titles
        await pilot.press("escape")
        assert not isinstance(app.screen, RunScreen)


async def test_mark_two_runs_and_overlay_their_curves(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        app.screen.query_one("#runs", DataTable).focus()
        await pilot.press("m", "down", "m", "c")
        await pilot.pause(0.5)
        assert isinstance(app.screen, CompareScreen)
        assert "loss" in app.screen.query_one(PlotGrid).titles
        assert {"DPO margin", "reward per function"} <= set(app.screen.query_one(PlotGrid).titles)


async def test_picking_a_preset_opens_the_wizard_at_review(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        start = app.screen.query_one("#start", OptionList)
        start.focus()
        index = next(i for i in range(start.option_count) if str(start.get_option_at_index(i).prompt).startswith("demo-sft"))
        start.highlighted = index
        await pilot.press("enter")
        await pilot.pause(0.5)
        assert isinstance(app.screen, WizardScreen)
        assert app.screen.index == 4
        assert 'technique = "sft"' in app.screen.draft.to_toml()
