"""What every wizard step is: a widget with a title, a short explanation of the choice, and the
draft preset it reads and writes. `enter()` runs each time the step is shown (earlier steps may
have changed the draft); `leave()` returns a problem that keeps the user on the step, or None.
Never imports torch.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from smoltrain.tui.draft import Draft


class Step(VerticalScroll):
    TITLE = ""
    EXPLAIN = ""

    def __init__(self, draft: Draft) -> None:
        super().__init__(id=f"step-{type(self).__name__.removesuffix('Step').lower()}", classes="step")
        self.draft = draft

    def compose_explanation(self) -> ComposeResult:
        yield Static(self.EXPLAIN, classes="explain")

    def enter(self) -> None:
        """Refresh from the draft; called each time the step is shown."""

    def leave(self) -> str | None:
        """Write the step's choice into the draft; a message keeps the user here."""
        return None
