"""The review step: the preset the wizard built, as TOML; save it as a preset; name the run and start.
Never imports torch.
"""

from __future__ import annotations

import time

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from smoltrain.tui.screens.wizard.base import Step


class ReviewStep(Step):
    TITLE = "Review"
    EXPLAIN = (
        "The preset these choices make. Save it to reuse it (it appears on the home screen, and "
        "`smoltrain run` takes it too), then start: training runs in its own process, and you can "
        "leave the run screen at any time without stopping it."
    )

    def compose(self) -> ComposeResult:
        yield from self.compose_explanation()
        yield Static("", id="review-problem")
        with Horizontal(id="review-row"):
            yield Label("run name ", classes="name")
            yield Input(id="run-name")
        with Horizontal(id="review-buttons"):
            yield Button("Start training (ctrl+r)", id="start", variant="success")
            yield Button("Save as preset (ctrl+s)", id="save-preset")
        yield Static("", id="review-toml")

    def enter(self) -> None:
        error = self.draft.error()
        self.query_one("#review-problem", Static).update(f"[b red]{error.render()}[/]" if error else "[green]valid preset[/]")
        self.query_one("#review-toml", Static).update(Syntax(self.draft.to_toml(), "toml", theme="ansi_dark",
                                                             background_color="default"))  # fmt: skip
        name = self.query_one("#run-name", Input)
        if not name.value:
            name.value = f"{self.draft.technique}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.query_one("#start", Button).focus()

    @property
    def run_name(self) -> str:
        return self.query_one("#run-name", Input).value.strip()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.screen.action_start()  # type: ignore[attr-defined]
        elif event.button.id == "save-preset":
            self.screen.action_save_preset()  # type: ignore[attr-defined]
