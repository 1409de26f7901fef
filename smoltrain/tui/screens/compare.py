"""Two runs' curves drawn on the same plots, each line labelled by its run.

Reads both events files once; a run still training is read as it stands. Never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Label

from smoltrain.rundir import RunDir, read_events
from smoltrain.runstate import load_state
from smoltrain.tui.series import overlay
from smoltrain.tui.widgets.plots import PlotGrid


class CompareScreen(Screen[None]):
    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("r", "reload", "Reload")]

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = run_dirs

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(" vs ".join(p.name for p in self.run_dirs), classes="heading")
        yield PlotGrid(id="plots")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Compare runs"
        self.action_reload()

    def action_reload(self) -> None:
        a, b = (load_state(read_events(RunDir(p).events), name=p.name) for p in self.run_dirs)
        self.query_one(PlotGrid).show(overlay(a, b))
