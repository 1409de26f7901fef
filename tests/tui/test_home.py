"""Home: past runs with their status and last metrics; open one to see its curves; overlay two."""

from __future__ import annotations

import io
import os
import shutil

import pytest
from rich.console import Console
from textual.widgets import DataTable, OptionList

from smoltrain.engine.events import Metrics
from smoltrain.rundir import EventWriter

from smoltrain.tui.screens.compare import CompareScreen
from smoltrain.tui.screens.home import HomeScreen
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
        assert rows["grpo-pipeline"][2] == "sft>grpo"  # a pipeline, short enough for 80 columns
        assert "10/10" in rows["grpo-pipeline"][5]
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


def screen_lines(app) -> list[str]:
    """The screen as a person sees it: one string per terminal row."""
    console = Console(width=app.size.width, record=True, file=io.StringIO(), color_system=None)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text().splitlines()


def _row_keys(table: DataTable) -> list[str]:
    return [str(row.key.value) for row in table.ordered_rows]


async def test_home_refreshes_itself_and_keeps_the_cursor_and_marks(app, recorded_runs, monkeypatch):
    """Defect 8: the list showed step 70 while the run was at 85; it must follow the runs on its own."""
    monkeypatch.setattr(HomeScreen, "REFRESH_S", 0.2, raising=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        table = app.screen.query_one("#runs", DataTable)
        table.focus()
        await pilot.press("down", "m")  # the cursor and a mark on grpo-pipeline
        assert _row_keys(table)[table.cursor_row] == "grpo-pipeline"
        emit = EventWriter(recorded_runs / "dpo-partial" / "events.jsonl")
        emit(Metrics(step=58, max_steps=60, loss=0.25))
        emit.close()
        newer = shutil.copytree(recorded_runs / "dpo-partial", recorded_runs / "a-newer-run")
        os.utime(newer / "config.toml")  # made now: listed first, above the cursor's run
        await pilot.pause(0.6)
        rows = {table.get_row_at(i)[1]: table.get_row_at(i) for i in range(table.row_count)}
        assert "58/60" in str(rows["dpo-partial"][5])
        assert _row_keys(table)[0] == "a-newer-run"
        assert _row_keys(table)[table.cursor_row] == "grpo-pipeline"  # the same run, though its row moved
        assert str(rows["grpo-pipeline"][0]) == "✓"


async def test_home_at_80x24_shows_every_column_and_the_footer(app):
    """Defect 14: at 80x24 the last columns and the footer were cut, and the heading said "Runs in runs"."""
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert "Runs in runs" not in text and "Your runs" in text
        header = next(line for line in lines if " name " in line)
        for column in ("technique", "model", "status", "took", "when"):
            assert column in header, header
        row = next(line for line in lines if "grpo-pipeline" in line)
        for cell in ("sft>grpo", "tiny-llama", "completed", "10/10", "04:01", "Nov 20"):
            assert cell in row, row
        footer = lines[-1]
        for key in ("n New", "c Compare", "d Delete", "q Quit"):
            assert key in footer, footer
