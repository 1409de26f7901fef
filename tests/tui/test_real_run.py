"""One real run through the app: the demo SFT preset on the tiny model, started from home, watched
as it trains, stopped with stop-and-save (the adapter lands in the run's final/ folder), then
resumed from the same screen to its last step."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList

from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.screens.run import RunScreen
from smoltrain.tui.widgets.plots import PlotGrid

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_demo_sft_trains_and_stops_with_save(workdir):
    # The stop comes after the first logged step. No eval: it costs seconds.
    app = SmoltrainApp(runs_dir="runs", run_overrides=["train.max_steps=20", "train.logging_steps=1", "data.eval_fraction=0",
                                                              "train.compare_prompts=0"])
    async with app.run_test(size=(100, 30)) as pilot:
        start = app.screen.query_one("#start", OptionList)
        start.highlighted = next(i for i in range(start.option_count) if str(start.get_option_at_index(i).prompt).startswith("demo-sft"))
        start.focus()
        await pilot.press("enter")  # the wizard, at review
        await pilot.pause()
        await pilot.press("ctrl+r")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, RunScreen)
        for _ in range(900):  # model load + first steps
            await pilot.pause(0.1)
            if screen.state.step >= 1 or screen.state.ended:
                break
        assert screen.state.step >= 1, screen.run_dir.joinpath("worker.log").read_text()[-2000:]
        assert "loss" in screen.query_one(PlotGrid).titles
        await pilot.press("q")  # quitting asks, because the run trains
        await pilot.pause()
        await pilot.press("escape")  # cancel: still here
        await pilot.pause()
        await pilot.press("x")
        await pilot.pause()
        await pilot.press("enter")  # "Stop and save"
        for _ in range(600):
            await pilot.pause(0.1)
            if screen.state.ended:
                break
        assert screen.state.finished is not None and screen.state.finished.status == "stopped"
        assert screen.state.step < 20
        assert (screen.run_dir / "final" / "adapter_config.json").exists()

        await pilot.press("r")  # resume, on the same screen
        for _ in range(900):
            await pilot.pause(0.1)
            if screen.state.finished is not None and screen.state.finished.status == "completed":
                break
        assert screen.state.finished is not None, screen.run_dir.joinpath("worker.log").read_text()[-2000:]
        assert screen.state.finished.status == "completed" and screen.state.finished.step == 20
