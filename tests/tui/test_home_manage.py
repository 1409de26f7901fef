"""Home manages the runs: how long each took, delete, rename, filter, edit and run again, compare any number;
and it reads the runs folder again cheaply (an unchanged run is not parsed again)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Label, Static

from smoltrain.engine.events import Metrics
from smoltrain.rundir import EventWriter
from smoltrain.tui import runs as runs_module
from smoltrain.tui.screens.compare import CompareScreen
from smoltrain.tui.screens.dialogs import ChoiceDialog, TextDialog
from smoltrain.tui.screens.home import HomeScreen
from smoltrain.tui.screens.wizard import WizardScreen

pytestmark = pytest.mark.anyio


def _table(app) -> DataTable:
    return app.screen.query_one("#runs", DataTable)


def _rows(app) -> dict[str, list]:
    table = _table(app)
    return {table.get_row_at(i)[1]: table.get_row_at(i) for i in range(table.row_count)}


def _heading(app) -> str:
    return str(app.screen.query_one("#runs-heading", Label).render())


async def _on_run(pilot, name: str) -> None:
    """Put the runs table's cursor on the run called `name`."""
    table = _table(pilot.app)
    table.focus()
    table.move_cursor(row=table.get_row_index(name))
    await pilot.pause()


@pytest.fixture
def training(monkeypatch: pytest.MonkeyPatch):
    """Runs that a worker trains now, by folder name (as the worker's lock would say)."""
    names: set[str] = set()
    monkeypatch.setattr(runs_module, "running_worker", lambda path: 4242 if Path(path).name in names else None)
    return names


async def test_home_shows_how_long_each_run_took(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        rows = _rows(app)
        assert rows["grpo-pipeline"][6] == "04:01"  # its run_finished duration_s, 241.6 s
        assert rows["dpo-partial"][6] == "04:15"  # interrupted: its first to its last event


async def test_delete_asks_with_the_size_and_removes_the_folder(app, recorded_runs):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await _on_run(pilot, "dpo-partial")
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceDialog)
        question = str(app.screen.query_one(Static).render())
        assert "dpo-partial" in question and "KB" in question
        await pilot.press("escape")  # cancel: kept
        await pilot.pause()
        assert (recorded_runs / "dpo-partial").is_dir() and "dpo-partial" in _rows(app)
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("enter")  # Enter alone cancels: the focus starts on Cancel, as nothing brings the run back
        await pilot.pause()
        assert (recorded_runs / "dpo-partial").is_dir()
        await pilot.press("d")
        await pilot.pause()
        await pilot.click("#answer-delete")
        await pilot.pause()
        assert not (recorded_runs / "dpo-partial").exists()
        assert set(_rows(app)) == {"grpo-pipeline"}


async def test_delete_and_rename_are_refused_while_the_run_trains(app, recorded_runs, training):
    training.add("dpo-partial")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await _on_run(pilot, "dpo-partial")
        for key in ("d", "e"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, HomeScreen)  # no dialog: refused at once
            assert any("training" in str(n.message) for n in app._notifications)
        assert (recorded_runs / "dpo-partial").is_dir()


async def test_rename_moves_the_folder_and_refuses_taken_or_bad_names(app, recorded_runs):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await _on_run(pilot, "dpo-partial")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, TextDialog)
        box = app.screen.query_one(Input)
        assert box.value == "dpo-partial"
        for bad in ("grpo-pipeline", "a/b", ".."):
            box.value = bad
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, TextDialog), bad  # stays open, saying why
            assert str(app.screen.query_one("#problem", Static).render())
        box.value = "dpo-beta-0.1"
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, HomeScreen)
        assert not (recorded_runs / "dpo-partial").exists()
        assert (recorded_runs / "dpo-beta-0.1" / "events.jsonl").is_file()
        assert set(_rows(app)) == {"dpo-beta-0.1", "grpo-pipeline"}
        table = _table(app)
        assert table.get_row_at(table.cursor_row)[1] == "dpo-beta-0.1"


async def test_filter_cycles_through_statuses_and_techniques(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert "all" in _heading(app)
        seen: dict[str, set[str]] = {}
        for _ in range(8):
            await pilot.press("f")
            await pilot.pause()
            seen[_heading(app)] = set(_rows(app))
        by_filter = {next(w for w in ("interrupted", "completed", "grpo", "dpo") if w in h): r
                     for h, r in seen.items() if any(w in h for w in ("interrupted", "completed", "grpo", "dpo"))}  # fmt: skip
        assert by_filter["interrupted"] == {"dpo-partial"}
        assert by_filter["completed"] == {"grpo-pipeline"}
        assert by_filter["grpo"] == {"grpo-pipeline"}  # a pipeline's stage counts
        assert by_filter["dpo"] == {"dpo-partial"}
        assert any("all" in h and r == {"dpo-partial", "grpo-pipeline"} for h, r in seen.items())  # back to all


async def test_edit_and_run_again_opens_the_wizard_at_review_with_the_runs_config(app):
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        await _on_run(pilot, "dpo-partial")
        await pilot.press("a")
        await pilot.pause(0.5)
        assert isinstance(app.screen, WizardScreen)
        assert app.screen.index == 4  # Review
        assert app.screen.draft.technique == "dpo"
        assert app.screen.draft.raw["model"]["name_or_path"].endswith("tiny-llama")
        assert app.screen.query_one("#run-name", Input).value not in ("", "dpo-partial", "dpo-rec")


async def test_mark_three_runs_and_compare_them_all(app, recorded_runs, monkeypatch):
    monkeypatch.setattr(CompareScreen, "action_reload", lambda self: None)  # its drawing of N runs is not Home's
    third = shutil.copytree(recorded_runs / "dpo-partial", recorded_runs / "dpo-again")
    os.utime(third / "config.toml", (1795100000, 1795100000))  # the oldest: listed last
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        _table(app).focus()
        await pilot.press("m", "down", "m", "down", "m")
        await pilot.pause()
        assert [str(row[0]) for row in _rows(app).values()] == ["✓", "✓", "✓"]
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, CompareScreen)
        assert [p.name for p in app.screen.run_dirs] == ["dpo-partial", "grpo-pipeline", "dpo-again"]


def test_reading_the_runs_again_parses_only_the_runs_that_changed(recorded_runs, monkeypatch):
    reads: list[Path] = []
    real_read_tail = runs_module.read_tail
    monkeypatch.setattr(runs_module, "read_tail", lambda path: reads.append(path) or real_read_tail(path))
    listing = runs_module.RunList(recorded_runs)
    assert {r.name for r in listing.read()} == {"dpo-partial", "grpo-pipeline"} and len(reads) == 2
    reads.clear()
    listing.read()
    assert reads == []
    emit = EventWriter(recorded_runs / "dpo-partial" / "events.jsonl")
    emit(Metrics(step=56, max_steps=60, loss=0.3))
    emit.close()
    runs = {r.name: r for r in listing.read()}
    assert [p.parent.name for p in reads] == ["dpo-partial"]
    assert runs["dpo-partial"].step == 56
