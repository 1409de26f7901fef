"""A grid of metric plots (textual-plotext) that uses the room it has: one column in 80x24,
two or three on wide terminals, taller plots on tall ones; it scrolls when the plots do not fit.

Fed `series.Panel`s; redraws only the plots whose data changed. Never imports torch.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Grid, VerticalScroll
from textual.events import Resize
from textual_plotext import PlotextPlot

from smoltrain.tui.series import Panel

_MIN_PLOT_HEIGHT = 9
_WIDE = 100  # columns from which two plots sit side by side
_VERY_WIDE = 170


def _plot_id(title: str) -> str:
    return "plot-" + "".join(c if c.isalnum() else "-" for c in title)


class PlotGrid(VerticalScroll):
    """Plots keyed by panel title; `show(panels)` adds new ones and redraws changed ones."""

    DEFAULT_CSS = """
    PlotGrid > Grid { height: auto; grid-gutter: 0 1; }
    PlotGrid PlotextPlot { height: 12; }
    PlotGrid .empty { color: $text-muted; padding: 1 2; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._drawn: dict[str, tuple[int, ...]] = {}  # title -> points per line when last drawn

    def compose(self) -> ComposeResult:
        yield Grid()

    @property
    def titles(self) -> list[str]:
        return [str(p.border_title) for p in self.query(PlotextPlot)]

    def show(self, panels: list[Panel]) -> None:
        grid = self.query_one(Grid)
        for panel in panels:
            shape = tuple(len(line.xs) for line in panel.lines)
            if self._drawn.get(panel.title) == shape:
                continue
            self._drawn[panel.title] = shape
            matches = grid.query(f"#{_plot_id(panel.title)}")
            if matches:
                plot = matches.first(PlotextPlot)
            else:
                plot = PlotextPlot(id=_plot_id(panel.title))
                plot.border_title = panel.title
                grid.mount(plot)
            self._draw(plot, panel)
        self._layout()

    @staticmethod
    def _draw(plot: PlotextPlot, panel: Panel) -> None:
        plt = plot.plt
        plt.clear_data()
        plt.title(panel.title)  # a border title needs a border; plotext's own title costs no extra row
        for line in panel.lines:
            # Braille markers give four times the resolution of blocks in the same cells.
            plt.plot(line.xs, line.ys, label=line.label if len(panel.lines) > 1 else None, marker="braille")
        plt.xlabel("step")
        plot.refresh()

    def on_resize(self, event: Resize) -> None:
        self._layout()

    def _layout(self) -> None:
        width, height = self.size
        if not width:
            return
        columns = 3 if width >= _VERY_WIDE else 2 if width >= _WIDE else 1
        plots = list(self.query(PlotextPlot))
        rows_wanted = 2 if height >= 2 * _MIN_PLOT_HEIGHT and len(plots) > columns else 1
        plot_height = max(_MIN_PLOT_HEIGHT, height // rows_wanted)
        grid = self.query_one(Grid)
        grid.styles.grid_size_columns = columns
        grid.styles.grid_rows = str(plot_height)
        for plot in plots:
            plot.styles.height = plot_height
