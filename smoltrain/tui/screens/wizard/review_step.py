"""The review step: the preset the wizard built, as TOML; save it as a preset; name the run and start.

A valid preset's data is also checked against the model's chat template, with the tokenizer only
(`smoltrain validate`'s check, in a worker thread): rows kept, truncation, system turns folded, or
the row the template rejects. Start refuses data that check rejected, and waits for the check to finish.
Never imports torch (the check imports it in its thread).
"""

from __future__ import annotations

import time

from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Input, Label, Static

from smoltrain.errors import SmoltrainError
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
        yield Static("", id="review-data")
        with Horizontal(id="review-row"):
            yield Label("run name ", classes="name")
            yield Input(id="run-name")
        with Horizontal(id="review-buttons"):
            yield Button("Start training (ctrl+r)", id="start", variant="success")
            yield Button("Save as preset (ctrl+s)", id="save-preset")
        yield Static("", id="review-toml")

    data_error: SmoltrainError | None = None  # what the data check found wrong, if it did
    _checking: object | None = None  # the config whose data is being checked, until its result is shown

    @property
    def checking(self) -> bool:
        """The data check is still running: Start waits for its verdict."""
        return self._checking is not None

    def enter(self) -> None:
        error = self.draft.error()
        self.query_one("#review-problem", Static).update(f"[b red]{error.render()}[/]" if error else "[green]valid preset[/]")
        self.data_error, self._checking = None, None
        if error is None:
            self.query_one("#review-data", Static).update("[dim]checking the data with the model's tokenizer…[/]")
            self._checking = self.draft.validate()
            self._check_data(self._checking)
        self.query_one("#review-toml", Static).update(Syntax(self.draft.to_toml(), "toml", theme="ansi_dark",
                                                             background_color="default"))  # fmt: skip
        name = self.query_one("#run-name", Input)
        if not name.value:
            name.value = f"{self.draft.technique}-{time.strftime('%Y%m%d-%H%M%S')}"
        self.query_one("#start", Button).focus()

    @work(thread=True, exclusive=True, group="review-data")
    def _check_data(self, cfg: object) -> None:
        from smoltrain.datacheck import check_data

        try:
            text, error = "\n".join(line.strip() for line in check_data(cfg)), None  # type: ignore[arg-type]
        except SmoltrainError as exc:
            text, error = exc.render(), exc
        except Exception as exc:  # noqa: BLE001 - a failed check is shown, it must not crash the wizard
            text, error = f"could not check the data: {type(exc).__name__}: {exc}", None
        self.app.call_from_thread(self._show_data_check, cfg, text, error)

    def _show_data_check(self, cfg: object, text: str, error: SmoltrainError | None) -> None:
        if cfg is not self._checking:
            return  # the check of an earlier visit, overtaken (a thread worker cannot be cancelled)
        self._checking, self.data_error = None, error
        # Text, not markup: template messages and rows hold brackets ("[INST]").
        shown = Text(text, style="bold red") if error else Text.assemble(("data ", "bold"), (text, "green"))
        self.query_one("#review-data", Static).update(shown)

    @property
    def run_name(self) -> str:
        return self.query_one("#run-name", Input).value.strip()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "start":
            self.screen.action_start()  # type: ignore[attr-defined]
        elif event.button.id == "save-preset":
            self.screen.action_save_preset()  # type: ignore[attr-defined]
