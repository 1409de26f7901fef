"""A grid of metric plots (textual-plotext) that uses the room it has: at least two plots in sight at
80x24 (side by side, as stacked they would show three rows of data each), two or three columns on wide
terminals, a grid of them on big ones; it scrolls when the plots do not fit.

Fed `series.Panel`s; redraws only the plots whose data changed. Each plot has a one-line key under it
(its title, what each colour and marker means) instead of plotext's legend, which covers the data.
One run: a colour per series. Several runs (Compare): a colour per run, the same in every plot, and a
marker per series. A pipeline's stages are separate lines, stage starts are vertical lines named on the
x axis, checkpoints ▲ on the bottom edge, stops and resumes vertical lines; a stage picker (`Choice`,
keys [ and ]) shows one stage on its own, in its own steps. Never imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.style import Style
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.events import Resize
from textual.markup import escape
from textual.message import Message
from textual.widgets import Static
from textual_plotext import PlotextPlot
from textual_plotext.plot import Plot

from smoltrain.tui.series import Marker, Panel

_MIN_CARD_HEIGHT = 7  # a plot of six rows and its key
_STACKED_HEIGHT = 10  # below this two stacked plots show too few rows of data: put them side by side instead
_NARROW = 70  # columns below which plots are always stacked
_WIDE = 100  # columns from which two plots sit side by side
_VERY_WIDE = 150
_ALL_STAGES = "all stages"
RGB = tuple[int, int, int]
# Distinct on dark and light backgrounds (textual-plotext's own sequence, which plotext would cycle through).
PALETTE: list[RGB] = [(0, 130, 200), (230, 25, 75), (60, 180, 75), (245, 130, 48), (145, 30, 180),
                      (70, 240, 240), (240, 50, 230), (255, 225, 25)]  # fmt: skip
MARKERS = ["braille", "•", "+", "x", "*", "o"]  # one per series where a colour stands for a run
_MARKER_SHOWN = {"braille": "⠒"}
_MARK_COLOURS: dict[str, RGB] = {"stage": (128, 128, 128), "checkpoint": (128, 128, 128),
                                 "stopped": (230, 25, 75), "resumed": (60, 180, 75)}  # fmt: skip
_MARK_SYMBOLS = {"stage": "│ stage", "checkpoint": "▲ checkpoint", "stopped": "│ stopped", "resumed": "│ resumed"}


def palette_colour(index: int) -> RGB:
    return PALETTE[index % len(PALETTE)]


def colour_style(rgb: RGB) -> Style:
    """The Rich style of a colour plotext draws, for keys and headings that name what it stands for."""
    return Style(color="#{:02x}{:02x}{:02x}".format(*rgb))


class Choice(Static):
    """One line of options with one chosen: click an option, or step with the keys its hint names."""

    DEFAULT_CSS = "Choice { height: 1; padding: 0 1; }"

    class Changed(Message):
        def __init__(self, choice: Choice, value: str) -> None:
            super().__init__()
            self.choice, self.value = choice, value

        @property
        def control(self) -> Choice:
            return self.choice

    def __init__(self, label: str, hint: str, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.label, self.hint = label, hint
        self.options: list[str] = []
        self.value = ""

    def set_options(self, options: list[str]) -> None:
        """Offer these; the chosen one stays chosen while offered. Hidden while there is nothing to choose."""
        self.options = options
        if self.value not in options:
            self.value = options[0] if options else ""
        self.display = len(options) > 1
        self._show()

    def step(self, delta: int) -> None:
        if self.options:
            self.action_pick((self.options.index(self.value) + delta) % len(self.options))

    def action_pick(self, index: int) -> None:
        self.value = self.options[index]
        self._show()
        self.post_message(self.Changed(self, self.value))

    def _show(self) -> None:
        picks = "  ".join(f"[{'reverse ' if o == self.value else ''}@click=pick({i})] {escape(o)} [/]"
                          for i, o in enumerate(self.options))  # fmt: skip
        self.update(f"{escape(self.label)} {picks}  [dim]{escape(self.hint)}[/]")


@dataclass(frozen=True)
class Look:
    """How one line is drawn."""

    colour: RGB
    marker: str


def looks(panel: Panel, runs: list[str]) -> list[Look]:
    """A colour per run where there are several runs (the same in every plot), else a colour per series."""
    series = list(dict.fromkeys(line.label for line in panel.lines))
    if len(runs) > 1:
        return [Look(palette_colour(runs.index(line.run)), MARKERS[series.index(line.label) % len(MARKERS)])
                for line in panel.lines]  # fmt: skip
    return [Look(palette_colour(series.index(line.label)), "braille") for line in panel.lines]


def key_text(panel: Panel, runs: list[str]) -> Text:
    """The plot's title and legend on one line, under the plot, where it hides no data."""
    text = Text(panel.title, style="bold")
    shown: dict[str, Look] = {}
    for line, look in zip(panel.lines, looks(panel, runs)):
        shown.setdefault(line.run if len(runs) > 1 else line.label, look)
    if len(shown) > 1 or len(runs) > 1:
        for name, look in shown.items():
            text.append("  ━ ", style=colour_style(look.colour)).append(name)
    if len(runs) > 1 and len(series := list(dict.fromkeys(line.label for line in panel.lines))) > 1:
        for i, label in enumerate(series):
            marker = MARKERS[i % len(MARKERS)]
            text.append(f"  {_MARKER_SHOWN.get(marker, marker)} {label}")
    for kind in dict.fromkeys(m.kind for m in _drawn_markers(panel)):
        text.append("  " + _MARK_SYMBOLS[kind], style=colour_style(_MARK_COLOURS[kind]))
    return text


def _drawn_markers(panel: Panel) -> list[Marker]:
    """The markers drawn: all but the start of the plot's first stage, which is its left edge."""
    first = min((x for line in panel.lines for x in line.xs), default=0)
    return [m for m in panel.markers if m.kind != "stage" or m.x > first]


class PlotCard(Vertical):
    """One plot and its key line."""

    DEFAULT_CSS = "PlotCard { height: 12; } PlotCard > Static { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }"

    def __init__(self, title: str) -> None:
        super().__init__()
        self.title = title
        self.plot = PlotextPlot()
        self.plot.border_title = title
        self.key = Static()
        self.drawn: tuple[object, ...] = ()  # what it was last drawn from

    def compose(self) -> ComposeResult:
        yield self.plot
        yield self.key


class PlotGrid(VerticalScroll):
    """Plots keyed by panel title; `show(panels)` adds new ones, drops gone ones and redraws changed ones."""

    BINDINGS = [Binding("[", "stage(-1)", "Stage", show=False), Binding("]", "stage(1)", "Stage", show=False)]
    DEFAULT_CSS = """
    PlotGrid > Grid { height: auto; grid-gutter: 0 1; }
    PlotGrid .empty { color: $text-muted; padding: 1 2; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._panels: list[Panel] = []
        self._runs: list[str] = []
        self.shown: list[Panel] = []  # what is drawn: the panels, or one stage of each
        self.cards: dict[str, PlotCard] = {}
        self.stage_picker = Choice("stage:", "[ ] to switch")

    def compose(self) -> ComposeResult:
        yield self.stage_picker
        yield Grid()

    @property
    def titles(self) -> list[str]:
        return list(self.cards)

    @property
    def plots(self) -> list[PlotextPlot]:
        return [card.plot for card in self.cards.values()]

    def show(self, panels: list[Panel], runs: list[str] | None = None) -> None:
        """Draw these; `runs` fixes each run's colour (by its place in the list) when several share the plots."""
        self._panels = panels
        self._runs = runs or list(dict.fromkeys(line.run for p in panels for line in p.lines))
        stages = list(dict.fromkeys(s for p in panels for s in p.stages))
        self.stage_picker.set_options([_ALL_STAGES, *stages] if len(stages) > 1 else [])  # one stage: nothing to pick
        self._redraw()

    def action_stage(self, delta: int) -> None:
        self.stage_picker.step(delta)

    @on(Choice.Changed)
    def _stage_chosen(self, event: Choice.Changed) -> None:
        if event.choice is self.stage_picker:
            event.stop()
            self._redraw()

    def _redraw(self) -> None:
        stage = self.stage_picker.value
        view = [p if stage in (_ALL_STAGES, "") else p.only(stage) for p in self._panels]  # "": one stage, no picker
        view = self.shown = [p for p in view if p.lines]
        runs = self._runs
        grid = self.query_one(Grid)
        titles = [p.title for p in view]
        if titles[: len(self.cards)] != self.titles:  # a plot went away: lay them out afresh, in order
            grid.remove_children()
            self.cards = {}
        for panel in view:
            card = self.cards.get(panel.title)
            if card is None:
                card = self.cards[panel.title] = PlotCard(panel.title)
                grid.mount(card)
            drawn = (stage, tuple(runs), tuple((len(line.xs), line.ys[-1]) for line in panel.lines), len(panel.markers))
            if card.drawn != drawn:
                card.drawn = drawn
                self._draw(card, panel, runs)
        self._layout()

    @staticmethod
    def _draw(card: PlotCard, panel: Panel, runs: list[str]) -> None:
        plt = card.plot.plt
        plt.clear_figure()
        for line, look in zip(panel.lines, looks(panel, runs)):
            # Braille markers give four times the resolution of blocks in the same cells.
            plt.plot(line.xs, line.ys, color=look.colour, marker=look.marker)
        _draw_markers(plt, panel, runs)
        card.key.update(key_text(panel, runs))
        card.plot.refresh()

    def on_resize(self, event: Resize) -> None:
        self._layout()

    def _layout(self) -> None:
        width, height = self.size
        if not width:
            return
        height -= self.stage_picker.display
        columns = 3 if width >= _VERY_WIDE else 2 if width >= _WIDE else 1
        if columns == 1 and width >= _NARROW and height < 2 * _STACKED_HEIGHT:  # 80x24: two in sight, side by side
            columns = 2
        cards = list(self.cards.values())
        rows_wanted = 2 if height >= 2 * _STACKED_HEIGHT and len(cards) > columns else 1
        card_height = max(_MIN_CARD_HEIGHT, height // rows_wanted)
        grid = self.query_one(Grid)
        grid.styles.grid_size_columns = max(1, min(columns, len(cards)))
        grid.styles.grid_rows = str(card_height)
        for card in cards:
            card.styles.height = card_height


def _mark_colour(marker: Marker, runs: list[str]) -> RGB:
    if len(runs) > 1 and marker.kind in ("stage", "checkpoint") and marker.run in runs:
        return palette_colour(runs.index(marker.run))
    return _MARK_COLOURS[marker.kind]


def _draw_markers(plt: Plot, panel: Panel, runs: list[str]) -> None:
    """Stage starts, stops and resumes as vertical lines, checkpoints on the bottom edge; one run's stage
    starts are named on the x axis. Where several runs share the plot, stage starts and checkpoints take
    their run's colour."""
    ys = [y for line in panel.lines for y in line.ys]
    markers = _drawn_markers(panel)
    for marker in markers:
        if marker.kind == "checkpoint":
            plt.scatter([marker.x], [min(ys)], marker="▲", color=_mark_colour(marker, runs))
        else:
            plt.vline(marker.x, color=_mark_colour(marker, runs))
    starts = {(m.x, m.label) for m in panel.markers if m.kind == "stage"}
    if len(starts) > 1 and len({line.run for line in panel.lines}) == 1:
        last = max(x for line in panel.lines for x in line.xs)
        # Techniques only: the stage picker numbers them, and short labels do not run into each other.
        ticks = [(x, label.partition(" ")[2]) for x, label in sorted(starts)] + [(last, f"{last:g}")]
        plt.xticks([x for x, _ in ticks], [label for _, label in ticks])

