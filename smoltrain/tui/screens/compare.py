"""Runs side by side, any number of them: their curves drawn on the same plots, a colour per run that
is the same in every plot (the heading names each run in its colour), one metric at a time if asked
(m / M), one pipeline stage at a time ([ / ]); and their evaluation results in one table per task and
metric, a column per run (widgets/eval_panel.py).

Runs still training are followed: a timer reads what their workers appended (rundir.EventReader, as the
run screen does) every POLL_S seconds, and redraws only when something arrived. r reads every run and its
eval/ folder again from the start. Never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from smoltrain.evalresults import read_results
from smoltrain.rundir import EventReader, RunDir
from smoltrain.runstate import RunState
from smoltrain.tui.series import Panel, overlay
from smoltrain.tui.widgets.eval_panel import side_by_side, stacked
from smoltrain.tui.widgets.plots import Choice, PlotGrid, colour_style, palette_colour

POLL_S = 1.0
_ALL_METRICS = "all metrics"


class CompareScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("m", "metric(1)", "Metric"),
        Binding("M", "metric(-1)", "Metric", show=False),
        Binding("[", "stage(-1)", "Stage", show=False),
        Binding("]", "stage(1)", "Stage", show=False),
        Binding("1", "tab('curves')", "Curves", show=False),
        Binding("2", "tab('eval')", "Eval", show=False),
    ]

    def __init__(self, run_dirs: list[Path]) -> None:
        super().__init__()
        self.run_dirs = run_dirs
        self.names = [p.name for p in run_dirs]
        self._readers: list[EventReader] = []
        self._states: list[RunState] = []
        self._panels: list[Panel] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(self._heading(), classes="heading")
        with TabbedContent(id="compare-tabs", initial="curves"):
            with TabPane("Curves [1]", id="curves"):
                yield Choice("metric:", "m to switch", id="metric-picker")
                yield PlotGrid(id="plots")
            with TabPane("Eval [2]", id="eval"), VerticalScroll():
                yield Static("", id="compare-eval")
        yield Footer()

    def _heading(self) -> Text:
        """The runs, each in its colour on the plots: the legend of every plot at once."""
        text = Text(" ")
        for i, name in enumerate(self.names):
            if i:
                text.append("  vs  ", style="dim")
            text.append("━ ", style=colour_style(palette_colour(i))).append(name, style="bold")
        return text

    def on_mount(self) -> None:
        self.title = "Compare runs"
        self.action_reload()
        self.set_interval(POLL_S, self.poll)

    def action_reload(self) -> None:
        self._readers = [EventReader(RunDir(p).events) for p in self.run_dirs]
        self._states = [RunState(name=p.name) for p in self.run_dirs]
        self.poll()
        results = {p.name: read_results(RunDir(p).eval) for p in self.run_dirs}
        self.query_one("#compare-eval", Static).update(stacked(side_by_side(results)))

    def poll(self) -> None:
        """Feed what each run's worker appended since the last read; redraw only if anything did."""
        arrived = False
        for reader, state, name in zip(self._readers, self._states, self.names):
            for event in reader.read():
                state.feed(event)
                arrived = True
            state.name = name  # its folder's name, as the heading says, not the name it was started under
        if arrived or not self._panels:
            self._panels = overlay(*self._states)
            self._show()

    def _show(self) -> None:
        picker = self.query_one("#metric-picker", Choice)
        picker.set_options([_ALL_METRICS, *(p.title for p in self._panels)])
        shown = [p for p in self._panels if picker.value in (_ALL_METRICS, p.title)]
        self.query_one(PlotGrid).show(shown, runs=self.names)

    @on(Choice.Changed, "#metric-picker")
    def _metric_chosen(self) -> None:
        self._show()

    def action_metric(self, delta: int) -> None:
        self.query_one("#metric-picker", Choice).step(delta)

    def action_stage(self, delta: int) -> None:
        self.query_one(PlotGrid).action_stage(delta)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
