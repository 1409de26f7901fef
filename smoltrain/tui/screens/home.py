"""The home screen: past runs under runs/ (open one to see its curves, mark two to overlay them),
"New run", and the presets, built-in and the user's own (open one in the wizard to review and start).

Imports no torch: it is the first screen, and must appear at once.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, OptionList
from textual.widgets.option_list import Option

from smoltrain.tui.draft import all_presets
from smoltrain.tui.runs import RunInfo, display_path, list_runs

_STATUS_STYLE = {"completed": "green", "stopped": "yellow", "failed": "bold red", "running": "bold cyan",
                 "interrupted": "magenta"}  # fmt: skip
NEW_RUN = "new"


class HomeScreen(Screen[None]):
    BINDINGS = [
        Binding("n", "new_run", "New run"),
        Binding("m", "mark", "Mark to compare"),
        Binding("c", "compare", "Compare 2"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.runs: list[RunInfo] = []
        self.marked: list[str] = []

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="home"):
            yield Label(f"Runs in {display_path(self.runs_dir)}  (enter: open, m: mark two to compare)", classes="heading")
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True)
            yield Label("Start  (enter: new run, or a preset to review and start)", classes="heading")
            yield OptionList(id="start")
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = "smoltrain", "post-train an LLM on your GPU"
        table = self.query_one("#runs", DataTable)
        table.add_columns(" ", "name", "technique", "model", "status", "last", "when")
        self.action_refresh()
        self.query_one("#start", OptionList).focus() if not self.runs else table.focus()

    def on_screen_resume(self) -> None:
        self.action_refresh()  # a run started or finished while another screen was shown

    def action_refresh(self) -> None:
        self.runs = list_runs(self.runs_dir)
        table = self.query_one("#runs", DataTable)
        row = table.cursor_row
        table.clear()
        for run in self.runs:
            status = Text(run.status, style=_STATUS_STYLE.get(run.status, ""))
            mark = "✓" if run.name in self.marked else ""
            table.add_row(mark, run.name, run.technique, run.model, status, run.last_metrics_text(), run.when_text(), key=run.name)
        if self.runs:
            table.move_cursor(row=min(row, len(self.runs) - 1))
        start = self.query_one("#start", OptionList)
        highlighted = start.highlighted
        start.clear_options()
        start.add_option(Option(Text.from_markup("[b]+ New run[/b]  (the wizard: model, technique, data, settings)"), id=NEW_RUN))
        for origin, preset in all_presets():
            label = Text.assemble((f"{preset.name}", "bold"), (f"  [{origin}]  ", "dim"), preset.description)
            start.add_option(Option(label, id=str(preset.path)))
        start.highlighted = highlighted if highlighted is not None else 0

    def _selected_run(self) -> RunInfo | None:
        table = self.query_one("#runs", DataTable)
        if not self.runs or table.cursor_row < 0:
            return None
        return self.runs[min(table.cursor_row, len(self.runs) - 1)]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        run = self._selected_run()
        if run is not None:
            self.app.open_run(run.path)  # type: ignore[attr-defined]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == NEW_RUN:
            self.action_new_run()
        elif event.option.id:
            self.app.open_wizard(Path(event.option.id))  # type: ignore[attr-defined]

    def action_new_run(self) -> None:
        self.app.open_wizard(None)  # type: ignore[attr-defined]

    def action_mark(self) -> None:
        run = self._selected_run()
        if run is None:
            return
        if run.name in self.marked:
            self.marked.remove(run.name)
        else:
            self.marked = (self.marked + [run.name])[-2:]  # the two most recently marked
        self.action_refresh()

    def action_compare(self) -> None:
        if len(self.marked) != 2:
            self.notify("Mark two runs with m first, then press c to overlay their curves.", severity="warning")
            return
        from smoltrain.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen([self.runs_dir / name for name in self.marked]))
