"""Compare: any number of runs on the same plots, a colour per run that is the same in every plot, one
metric at a time if asked, and the curves of runs still training kept up to date."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from smoltrain.engine.events import Metrics
from smoltrain.tui.screens.compare import POLL_S, CompareScreen
from smoltrain.tui.widgets.plots import PlotGrid

pytestmark = pytest.mark.anyio


@pytest.fixture
def three_runs(recorded_runs: Path) -> list[Path]:
    again = recorded_runs / "dpo-again"
    shutil.copytree(recorded_runs / "dpo-partial", again)
    return [recorded_runs / "grpo-pipeline", recorded_runs / "dpo-partial", again]


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[int, list[dict]]:
    """What each plot was last asked to draw: plotext's plot() calls, by plot object."""
    calls: dict[int, list[dict]] = {}
    cleared = Plot.clear_figure

    def clear_figure(self: Plot) -> None:
        calls[id(self)] = []
        cleared(self)

    def plot(self: Plot, *args: object, **kwargs: object) -> None:
        calls.setdefault(id(self), []).append({"xs": list(args[0]), **kwargs})  # type: ignore[call-overload]

    monkeypatch.setattr(Plot, "clear_figure", clear_figure)
    monkeypatch.setattr(Plot, "plot", plot)
    return calls


def _colours_by_run(grid: PlotGrid, drawn: dict[int, list[dict]]) -> dict[str, list[tuple[str, object]]]:
    """For each plot: (run, colour plotext was given) for each of its lines."""
    found: dict[str, list[tuple[str, object]]] = {}
    for title, card in grid.cards.items():
        panel = next(p for p in grid.shown if p.title == title)
        for line, call in zip(panel.lines, drawn[id(card.plot.plt)], strict=True):
            found.setdefault(title, []).append((line.run, call["color"]))
    return found


async def test_three_runs_share_each_plot_with_one_colour_per_run(app, three_runs, drawn):
    """Issue 14, defect 9: colours were per line, so the same colour meant one run in one panel and the
    other run in the next; and Compare took exactly two runs."""
    async with app.run_test(size=(160, 45)) as pilot:
        app.push_screen(CompareScreen(three_runs))
        await pilot.pause()
        grid = app.screen.query_one(PlotGrid)
        lines = _colours_by_run(grid, drawn)
        assert {run for run, _ in lines["loss"]} == {"grpo-pipeline", "dpo-partial", "dpo-again"}
        colour_of: dict[str, object] = {}
        for title, pairs in lines.items():
            for run, colour in pairs:
                assert colour_of.setdefault(run, colour) == colour, f"{run} changes colour in {title}"
        assert len(set(colour_of.values())) == 3
        assert all(call.get("label") is None for calls in drawn.values() for call in calls), "no legend over the data"
        key = str(grid.cards["loss"].key.render())
        assert all(name in key for name in ("grpo-pipeline", "dpo-partial", "dpo-again")), key


async def test_the_metric_picker_shows_one_metric(app, three_runs):
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(CompareScreen(three_runs))
        await pilot.pause()
        grid = app.screen.query_one(PlotGrid)
        assert len(grid.titles) > 2
        await pilot.press("m")
        await pilot.pause()
        assert grid.titles == ["loss"]
        await pilot.press("m")
        await pilot.pause()
        assert len(grid.titles) == 1 and grid.titles != ["loss"]


async def test_compare_follows_runs_still_training(app, three_runs):
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(CompareScreen(three_runs))
        await pilot.pause()
        grid = app.screen.query_one(PlotGrid)

        def dpo_steps() -> list[float]:
            loss = next(p for p in grid.shown if p.title == "loss")
            return next(line.xs for line in loss.lines if line.run == "dpo-partial" and line.label == "train")

        before = dpo_steps()
        with (three_runs[1] / "events.jsonl").open("a") as f:
            f.write(Metrics(step=int(before[-1]) + 1, max_steps=60, loss=0.5).to_json() + "\n")  # type: ignore[call-arg]
        await pilot.pause(2 * POLL_S + 0.2)
        assert dpo_steps() == [*before, before[-1] + 1]


async def test_the_run_screen_shows_two_plots_at_80x24(app, recorded_runs):
    """Issue 14, defect 14: at 80x24 the run screen showed one plot."""
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(recorded_runs / "grpo-pipeline")
        await pilot.pause(0.5)
        grid = app.screen.query_one(PlotGrid)  # the part of the screen the plots scroll in
        visible = [plot for plot in app.screen.query(PlotextPlot)
                   if plot.region.height >= 5 and grid.region.contains_region(plot.region)]  # fmt: skip
        assert len(visible) >= 2, [p.region for p in app.screen.query(PlotextPlot)]


async def test_the_stage_picker_shows_one_stage_in_its_own_steps(app, recorded_runs, drawn):
    """Issue 14, defect 10: a pipeline's losses were one line across stages."""
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(recorded_runs / "grpo-pipeline")
        await pilot.pause(0.5)
        grid = app.screen.query_one(PlotGrid)
        loss = drawn[id(grid.cards["loss"].plot.plt)]
        assert [(c["xs"][0], c["xs"][-1]) for c in loss] == [(1, 20), (21, 30)]  # two lines, one per stage
        await pilot.press("]", "]")
        await pilot.pause()
        loss = drawn[id(grid.cards["loss"].plot.plt)]
        assert [(c["xs"][0], c["xs"][-1]) for c in loss] == [(1, 10)]  # GRPO alone, steps 1..10
        assert grid.stage_picker.display, "a pipeline offers its stages"


async def test_a_one_stage_run_offers_no_stage_picker(app, recorded_runs):
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(recorded_runs / "dpo-partial")
        await pilot.pause(0.5)
        assert not app.screen.query_one(PlotGrid).stage_picker.display, "'all stages / 1 dpo' is nothing to choose"
