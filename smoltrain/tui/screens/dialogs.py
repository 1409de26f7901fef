"""Modal dialogs: a question with a few answers (stop-and-save, quit with a run training, delete a run)
and a one-line text prompt (the name to save a preset under, a run's new name), which can refuse an
answer and say why. Escape always means "cancel". Never imports torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

_Answer = TypeVar("_Answer")


class _Dialog(ModalScreen[_Answer]):
    """A box in the middle of the screen. Its CSS is here, where both dialogs inherit it: a dialog's own
    DEFAULT_CSS is scoped to that dialog, so styling TextDialog from ChoiceDialog's CSS did nothing."""

    DEFAULT_CSS = """
    _Dialog { align: center middle; }
    _Dialog > Vertical {
        width: 70; max-width: 95%; height: auto; border: thick $warning; background: $surface; padding: 1 2;
    }
    _Dialog Horizontal { height: auto; margin-top: 1; }
    _Dialog Button { margin-right: 1; }
    _Dialog .problem { color: $error; height: auto; }
    """


class ChoiceDialog(_Dialog[str]):
    """Asks `question`; returns the chosen answer's value, or "cancel"."""

    BINDINGS = [Binding("escape", "dismiss('cancel')", "Cancel")]

    def __init__(self, question: str, answers: list[tuple[str, str, str]], cancel_first: bool = False) -> None:
        """answers: (label, value, button variant). cancel_first: Enter cancels (for what cannot be undone)."""
        super().__init__()
        self.question, self.answers, self.cancel_first = question, answers, cancel_first

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)  # wraps, where a Label would cut a long question
            with Horizontal():
                for label, value, variant in self.answers:
                    yield Button(label, id=f"answer-{value}", variant=variant)  # type: ignore[arg-type]
                yield Button("Cancel (esc)", id="answer-cancel")

    def on_mount(self) -> None:
        (self.query_one("#answer-cancel", Button) if self.cancel_first else self.query(Button).first()).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss((event.button.id or "answer-cancel").removeprefix("answer-"))


class TextDialog(_Dialog[str | None]):
    """Asks for one line of text; returns it, or None when cancelled. `problem(text)` may refuse an
    answer: the dialog then stays open and shows why."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, question: str, value: str = "", problem: Callable[[str], str | None] | None = None) -> None:
        super().__init__()
        self.question, self.value, self.problem = question, value, problem

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)  # wraps, where a Label would cut a long question
            yield Input(self.value, id="text")
            yield Static("", id="problem", classes="problem")
            with Horizontal():
                yield Button("OK", id="ok", variant="primary")
                yield Button("Cancel (esc)", id="cancel")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._answer(event.value)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._answer(self.query_one(Input).value)
        else:
            self.dismiss(None)

    def _answer(self, text: str) -> None:
        text = text.strip()
        problem = self.problem(text) if self.problem is not None and text else None
        if problem:
            self.query_one("#problem", Static).update(problem)
        else:
            self.dismiss(text or None)
