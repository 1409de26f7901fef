"""Two runs side by side: their curves drawn on the same plots, each line labelled by its run, and
their evaluation results in one table per task and metric, a column per run (widgets/eval_panel.py).

Reads both events files and eval/ folders once (r reads them again); a run still training is read as
it stands. Never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, Static, TabbedContent, TabPane

from smoltrain.evalresults import read_results
from smoltrain.rundir import RunDir, read_events
from smoltrain.runstate import load_state
from smoltrain.tui.series import overlay
from smoltrain.tui.widgets.eval_panel import side_by_side, stacked
from smoltrain.tui.widgets.plots import PlotGrid


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("1", "tab('curves')", "Curves", show=False),
        Binding("2", "tab('eval')", "Eval", show=False),
    ]

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = run_dirs

    def compose(self) -> ComposeResult:
        yield Header()
        yield Label(" vs ".join(p.name for p in self.run_dirs), classes="heading")
        with TabbedContent(id="compare-tabs", initial="curves"):
            with TabPane("Curves [1]", id="curves"):
                yield PlotGrid(id="plots")
            with TabPane("Eval [2]", id="eval"), VerticalScroll():
                yield Static("", id="compare-eval")
        yield Footer()

    def on_mount(self) -> None:
        self.title = "Compare runs"
        self.action_reload()

    def action_reload(self) -> None:
        a, b = (load_state(read_events(RunDir(p).events), name=p.name) for p in self.run_dirs)
        self.query_one(PlotGrid).show(overlay(a, b))
        results = {p.name: read_results(RunDir(p).eval) for p in self.run_dirs}
        self.query_one("#compare-eval", Static).update(stacked(side_by_side(results)))

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
