"""Modal dialogs: a question with a few answers (stop-and-save, quit with a run training) and a
one-line text prompt (the name to save a preset under). Escape always means "cancel".
Never imports torch.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ChoiceDialog(ModalScreen[str]):
    """Asks `question`; returns the chosen answer's value, or "cancel"."""

    BINDINGS = [Binding("escape", "dismiss('cancel')", "Cancel")]
    DEFAULT_CSS = """
    ChoiceDialog, TextDialog { align: center middle; }
    ChoiceDialog > Vertical, TextDialog > Vertical {
        width: 70; max-width: 95%; height: auto; border: thick $warning; background: $surface; padding: 1 2;
    }
    ChoiceDialog Horizontal, TextDialog Horizontal { height: auto; margin-top: 1; }
    ChoiceDialog Button, TextDialog Button { margin-right: 1; }
    """

    def __init__(self, question: str, answers: list[tuple[str, str, str]]) -> None:
        """answers: (label, value, button variant)."""
        super().__init__()
        self.question, self.answers = question, answers

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)  # wraps, where a Label would cut a long question
            with Horizontal():
                for label, value, variant in self.answers:
                    yield Button(label, id=f"answer-{value}", variant=variant)  # type: ignore[arg-type]
                yield Button("Cancel (esc)", id="answer-cancel")

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "answer-cancel").removeprefix("answer-"))


class TextDialog(ModalScreen[str | None]):
    """Asks for one line of text; returns it, or None when cancelled."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)  # wraps, where a Label would cut a long question
            yield Input(self.value, id="text")
            with Horizontal():
                yield Button("OK", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(self.query_one(Input).value.strip() or None if event.button.id == "ok" else None)
