"""The new-run wizard: Model -> Technique -> Dataset -> Settings -> Review, one step at a time.

A Draft (tui.draft) carries the preset being built; each step explains its choice, reads the draft
when shown and writes it when left. Opened from a preset, the wizard starts at Review with that
preset loaded, and any step can still be revisited. Keys: ctrl+n next, escape back, ctrl+s save
as preset, ctrl+r start. Never imports torch.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, ContentSwitcher, Footer, Header, Static

from smoltrain.tui.draft import Draft
from smoltrain.tui.screens.dialogs import TextDialog
from smoltrain.tui.screens.wizard.base import Step
from smoltrain.tui.screens.wizard.choose import ModelStep, TechniqueStep
from smoltrain.tui.screens.wizard.data_step import DataStep
from smoltrain.tui.screens.wizard.review_step import ReviewStep
from smoltrain.tui.screens.wizard.settings_step import SettingsStep

STEPS: list[type[Step]] = [ModelStep, TechniqueStep, DataStep, SettingsStep, ReviewStep]


class WizardScreen(Screen[None]):
    BINDINGS = [
        Binding("ctrl+n", "next", "Next"),
        Binding("escape", "back", "Back"),
        Binding("ctrl+s", "save_preset", "Save preset"),
        Binding("ctrl+r", "start", "Start"),
        Binding("ctrl+f", "fit", "Fit to my GPU"),  # here, not on the step: focus may sit outside it
    ]

    def __init__(self, draft: Draft | None = None, at_review: bool = False) -> None:
        super().__init__()
        self.draft = draft or Draft.new()
        self.index = len(STEPS) - 1 if at_review else 0
        self.steps = [cls(self.draft) for cls in STEPS]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="stepper")
        with ContentSwitcher(id="steps", initial=self.steps[self.index].id):
            yield from self.steps
        yield Static("", id="wizard-problem")
        with Horizontal(id="wizard-nav"):
            yield Button("◀ Back (esc)", id="back", compact=True)
            yield Button("Next ▶ (ctrl+n)", id="next", variant="primary", compact=True)
        yield Footer()

    def on_mount(self) -> None:
        self.title = "New run"
        self._show(self.index)

    @property
    def step(self) -> Step:
        return self.steps[self.index]

    def _show(self, index: int) -> None:
        self.index = index
        self.query_one(ContentSwitcher).current = self.step.id
        names = [f"{i + 1} {cls.TITLE}" for i, cls in enumerate(STEPS)]
        marked = "  ›  ".join(f"[b reverse] {n} [/]" if i == index else f"[dim]{n}[/]" for i, n in enumerate(names))
        self.query_one("#stepper", Static).update(marked)
        self.sub_title = f"step {index + 1} of {len(STEPS)}: {self.step.TITLE}"
        self.query_one("#wizard-problem", Static).update("")
        self.query_one("#next", Button).display = index < len(STEPS) - 1
        self.step.enter()
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "fit":
            return isinstance(self.step, SettingsStep)  # shown in the footer on the settings step only
        return True

    def action_fit(self) -> None:
        if isinstance(self.step, SettingsStep):
            self.step.fit()

    def _leave_step(self) -> bool:
        """Write the step into the draft; False (and the problem shown) when it holds what cannot be used."""
        problem = self.step.leave()
        if problem:
            self.query_one("#wizard-problem", Static).update(f"[b red]{problem}[/]")
        return not problem

    def action_next(self) -> None:
        if self._leave_step() and self.index < len(STEPS) - 1:
            self._show(self.index + 1)

    def action_back(self) -> None:
        if self.index == 0:
            self.app.pop_screen()
        else:
            self.step.leave()  # keep what was typed, even if it is not valid yet
            self._show(self.index - 1)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "next":
            self.action_next()
        elif event.button.id == "back":
            self.action_back()

    def _ready(self) -> bool:
        error = self.draft.error()
        if error is not None:
            self.query_one("#wizard-problem", Static).update(f"[b red]{error.render()}[/]")
            self.notify(error.message, severity="error", title="not a valid preset yet")
        return error is None

    def action_save_preset(self) -> None:
        if self.index != len(STEPS) - 1 and not self._leave_step():
            return
        if self._ready():
            suggestion = f"my-{self.draft.technique}"
            self.app.push_screen(TextDialog("Save the preset as (a name):", suggestion), self._save_as)

    def _save_as(self, name: str | None) -> None:
        if name:
            path = self.draft.save(name)
            self.notify(f"Saved {path}", title="preset saved")

    def action_start(self) -> None:
        if self.index != len(STEPS) - 1:
            if self._leave_step():  # a bad entry on this step is not skipped over to the review
                self._show(len(STEPS) - 1)
            return
        if not self._ready():
            return
        review = self.steps[-1]
        assert isinstance(review, ReviewStep)
        if review.checking:
            self.query_one("#wizard-problem", Static).update(
                "[b yellow]still checking the data with the model's tokenizer: Start again when the check is shown[/]")
            return
        if review.data_error is not None:
            self.notify(review.data_error.message, severity="error", title="the data would fail this run")
            return
        self.app.start_run(self.draft.validate(), review.run_name)  # type: ignore[attr-defined]
