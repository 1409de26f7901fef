"""The home screen: past runs under runs/ (open one to see its curves, mark any number to overlay them,
filter them, rename or delete one, edit one's config and run it again), "New run", and the presets,
built-in and the user's own (open one in the wizard to review and start).

The runs table follows the runs on its own (every REFRESH_S while shown; smoltrain/tui/runs.py parses
only the runs that changed), keeping the cursor on the same run and the marks. Its columns fit the
terminal: names and models are cut short (…) before anything else is, so every column stays on screen.

Imports no torch: it is the first screen, and must appear at once.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label, OptionList
from textual.widgets.option_list import Option

from smoltrain.errors import SmoltrainError
from smoltrain.rundir import RunDir
from smoltrain.tui.draft import all_presets
from smoltrain.tui.runs import (STATUSES, RunInfo, RunList, delete_run, describe_size, display_path,
                                refuse_while_training, rename_problem, rename_run)  # fmt: skip
from smoltrain.tui.screens.dialogs import ChoiceDialog, TextDialog

_STATUS_STYLE = {"completed": "green", "stopped": "yellow", "failed": "bold red", "running": "bold cyan",
                 "interrupted": "magenta"}  # fmt: skip
NEW_RUN = "new"
COLUMNS = (" ", "name", "technique", "model", "status", "progress", "took", "when")
# Cut short, in this order, when the terminal is narrow, down to these widths; the others are short already.
_SHRINKABLE = {"name": 8, "model": 6, "technique": 5}
_SCROLLBAR = 2


def fit_widths(rows: list[tuple[str, ...]], available: int) -> list[int]:
    """Each column's width (one space apart) so that the table fits in `available` cells if it can."""
    widths = [max([len(header)] + [len(row[i]) for row in rows]) for i, header in enumerate(COLUMNS)]
    excess = sum(widths) + len(widths) - available
    while excess > 0:
        shrinkable = [i for i, c in enumerate(COLUMNS) if c in _SHRINKABLE and widths[i] > _SHRINKABLE[c]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1
    return widths


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


class HomeScreen(Screen[None]):
    REFRESH_S = 2.0
    BINDINGS = [
        Binding("n", "new_run", "New"),
        Binding("m", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("a", "again", "Rerun"),  # its config in the wizard at Review: edit, run anew
        Binding("e", "rename", "Rename"),
        Binding("d", "delete", "Delete"),
        Binding("f", "filter", "Filter"),
        Binding("r", "refresh", "Refresh", show=False),
    ]

    def __init__(self, runs_dir: Path) -> None:
        super().__init__()
        self.runs_dir = runs_dir
        self.listing = RunList(runs_dir)
        self.runs: list[RunInfo] = []  # every run, newest first
        self.shown: list[RunInfo] = []  # those the filter lets through, as the table lists them
        self.marked: list[str] = []  # in the order they were marked
        self.filter = "all"
        self._drawn: object = None  # what the table shows now: redrawn only when it changes

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="home"):
            yield Label("", id="runs-heading", classes="heading")
            yield DataTable(id="runs", cursor_type="row", zebra_stripes=True, cell_padding=0)
            yield Label("Start a run  (enter: the wizard, or a preset to review and start)", classes="heading")
            yield OptionList(id="start")
        yield Footer(compact=True, show_command_palette=False)  # every key fits in 80 columns; ctrl+p still works

    def on_mount(self) -> None:
        self.title, self.sub_title = "smoltrain", "post-train an LLM on your GPU"
        self.action_refresh()
        self.query_one("#start", OptionList).focus() if not self.runs else self.query_one("#runs", DataTable).focus()
        self.set_interval(self.REFRESH_S, self._follow_runs)
        self.call_after_refresh(self._show_runs)  # again once the table knows its size: the columns fit it

    def on_screen_resume(self) -> None:
        self.action_refresh()  # a run started or finished while another screen was shown

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_runs)  # the columns fit the new width

    def _follow_runs(self) -> None:
        if self.is_current:
            self._read_runs()

    def action_refresh(self) -> None:
        self._read_runs()
        start = self.query_one("#start", OptionList)
        highlighted = start.highlighted
        start.clear_options()
        start.add_option(Option(Text.from_markup("[b]+ New run[/b]  (the wizard: model, technique, data, settings)"), id=NEW_RUN))
        for origin, preset in all_presets():
            label = Text.assemble((f"{preset.name}", "bold"), (f"  [{origin}]  ", "dim"), preset.description)
            start.add_option(Option(label, id=str(preset.path)))
        start.highlighted = highlighted if highlighted is not None else 0

    # --- the runs table -----------------------------------------------------------------------------

    def _read_runs(self) -> None:
        self.runs = self.listing.read()
        names = {run.name for run in self.runs}
        self.marked = [name for name in self.marked if name in names]
        self._show_runs()

    def _show_runs(self, cursor_on: str | None = None) -> None:
        """Draw the filtered runs, the cursor staying on its run (or `cursor_on`) wherever its row went."""
        table = self.query_one("#runs", DataTable)
        selected = self._selected_run()
        cursor_on = cursor_on or (selected.name if selected else None)
        self.shown = [run for run in self.runs if run.matches(self.filter)]
        scrollbar = _SCROLLBAR if len(self.shown) + 1 > table.size.height else 0
        available = (table.size.width or self.size.width) - scrollbar
        rows = [self._cells(run, with_time=True) for run in self.shown]
        if sum(fit_widths(rows, 10**6)) + len(COLUMNS) > available:
            rows = [self._cells(run, with_time=False) for run in self.shown]  # the day is enough, names keep their room
        widths = fit_widths(rows, available)
        drawn = (rows, widths)
        self._update_heading()
        if drawn == self._drawn:
            return
        self._drawn = drawn
        row_index = table.cursor_row
        table.clear(columns=True)
        for header, width in zip(COLUMNS, widths):
            table.add_column(header, width=width + 1)  # the +1: a space between columns (cell_padding is 0)
        for run, cells in zip(self.shown, rows):
            shown: list[str | Text] = [_cut(cell, width) for cell, width in zip(cells, widths)]
            shown[4] = Text(run.status, style=_STATUS_STYLE.get(run.status, ""))
            table.add_row(*shown, key=run.name)
        keys = [run.name for run in self.shown]
        if keys:
            table.move_cursor(row=keys.index(cursor_on) if cursor_on in keys else min(max(row_index, 0), len(keys) - 1))

    def _cells(self, run: RunInfo, with_time: bool) -> tuple[str, ...]:
        mark = "✓" if run.name in self.marked else ""
        return (mark, run.name, run.technique, run.model, run.status, run.last_metrics_text(), run.duration_text(),
                run.when_text(with_time=with_time))  # fmt: skip

    def _update_heading(self) -> None:
        where = display_path(self.runs_dir)
        if not self.runs:
            text = f"Your runs ({where}/): none yet; start one below"
        else:
            text = f"Your runs ({where}/), showing {self.filter}"
            text += "  (none: f for the next filter)" if not self.shown else "  ·  enter: open  m: mark  c: compare"
        self.query_one("#runs-heading", Label).update(text)

    def _selected_run(self) -> RunInfo | None:
        table = self.query_one("#runs", DataTable)
        if not self.shown or table.row_count == 0 or table.cursor_row < 0:
            return None
        key = table.ordered_rows[min(table.cursor_row, table.row_count - 1)].key.value
        return next((run for run in self.shown if run.name == key), None)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        run = next((run for run in self.shown if run.name == event.row_key.value), None)
        if run is not None:
            self.app.open_run(run.path)  # type: ignore[attr-defined]

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == NEW_RUN:
            self.action_new_run()
        elif event.option.id:
            self.app.open_wizard(Path(event.option.id))  # type: ignore[attr-defined]

    # --- actions on runs ----------------------------------------------------------------------------

    def action_new_run(self) -> None:
        self.app.open_wizard(None)  # type: ignore[attr-defined]

    def action_mark(self) -> None:
        run = self._selected_run()
        if run is None:
            return
        if run.name in self.marked:
            self.marked.remove(run.name)
        else:
            self.marked.append(run.name)
        self._show_runs()

    def action_compare(self) -> None:
        if len(self.marked) < 2:
            self.notify("Mark two or more runs with m first, then press c to overlay their curves.", severity="warning")
            return
        from smoltrain.tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen([self.runs_dir / name for name in self.marked]))

    def action_filter(self) -> None:
        """Cycle through all, each status present, each technique present."""
        statuses = [status for status in STATUSES if any(run.status == status for run in self.runs)]
        techniques = sorted({technique for run in self.runs for technique in run.techniques})
        choices = ["all", *statuses, *techniques]
        self.filter = choices[(choices.index(self.filter) + 1) % len(choices)] if self.filter in choices else "all"
        self._show_runs()

    def action_again(self) -> None:
        run = self._selected_run()
        if run is not None:
            description = f"Edited from the run {run.name}."
            self.app.open_wizard(RunDir(run.path).config, description)  # type: ignore[attr-defined]

    def _refused_while_training(self, run: RunInfo, doing: str) -> bool:
        try:
            refuse_while_training(run, doing)
        except SmoltrainError as exc:
            self.notify(exc.render(), severity="error", title=f"not {doing}d")
            return True
        return False

    def action_delete(self) -> None:
        run = self._selected_run()
        if run is None or self._refused_while_training(run, "delete"):
            return
        question = (f"Delete the run {run.name}? Its folder {display_path(run.path)}/ goes, with all it holds "
                    f"({describe_size(run.path)} on disk: checkpoints, the trained model, exports). "
                    "This cannot be undone.")  # fmt: skip
        self.app.push_screen(ChoiceDialog(question, [("Delete", "delete", "error")], cancel_first=True), partial(self._delete, run))

    def _delete(self, run: RunInfo, answer: str | None) -> None:
        if answer != "delete":
            return
        if not self._changed(partial(delete_run, run), f"could not delete all of {run.path}", "not deleted"):
            return
        self.app.forget_run(run.path)  # type: ignore[attr-defined]
        self._read_runs()
        self.notify(f"Deleted {run.name}.")

    def _changed(self, change: Callable[[], object], failing: str, title: str) -> bool:
        """Delete or rename a run folder; what refuses it (a run that trains) or the disk's error is a notice."""
        try:
            change()
        except SmoltrainError as exc:
            self.notify(exc.render(), severity="error", title=title)
            return False
        except OSError as exc:
            self.notify(f"error: {failing}: {exc}", severity="error", title=title)
            return False
        return True

    def action_rename(self) -> None:
        run = self._selected_run()
        if run is None or self._refused_while_training(run, "rename"):
            return
        question = f"Rename the run {run.name} (its folder in {display_path(self.runs_dir)}/) to:"
        self.app.push_screen(TextDialog(question, run.name, partial(rename_problem, run)), partial(self._rename, run))

    def _rename(self, run: RunInfo, new_name: str | None) -> None:
        if not new_name or new_name == run.name:
            return
        if not self._changed(partial(rename_run, run, new_name), f"could not rename {run.path}", "not renamed"):
            return
        self.app.forget_run(run.path)  # type: ignore[attr-defined]
        self.marked = [new_name if name == run.name else name for name in self.marked]
        self.runs = self.listing.read()
        self._show_runs(cursor_on=new_name)
