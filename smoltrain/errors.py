"""User-facing errors: what went wrong, where, and what to do about it.

A SmoltrainError is a *user* mistake (bad preset, bad data, model not found, does not fit):
the CLI prints it as one line plus a hint and exits 2, without a traceback. Anything else
that escapes is a bug (exit 1). The TUI shows the same two lines.

Imports nothing heavy: this module is on the `smoltrain --help` path.
"""

from __future__ import annotations

USER_ERROR_EXIT_CODE = 2
BUG_EXIT_CODE = 1


class SmoltrainError(Exception):
    """A mistake the user can fix. `message` names what is wrong and where; `hint` says what to do."""

    def __init__(self, message: str, hint: str = "", *, needs_network: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        # A hub model or dataset that is not in the local cache while the hub cannot be reached:
        # `smoltrain validate` says what it could not check instead of failing the preset.
        self.needs_network = needs_network

    def __str__(self) -> str:
        return self.message

    def render(self) -> str:
        """The text shown to the user: one line for the problem, one for the hint."""
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, str]:
        return {"error_type": type(self).__name__, "message": self.message, "hint": self.hint}


class ConfigError(SmoltrainError):
    """A preset or override is wrong: TOML syntax, unknown key, wrong type, bad value."""


class DataError(SmoltrainError):
    """A dataset cannot be read or does not have the shape the technique needs."""


class ModelError(SmoltrainError):
    """A model or tokenizer cannot be found or used as asked."""


class FitError(SmoltrainError):
    """The run does not fit in the GPU's memory."""


class DiskFullError(SmoltrainError):
    """The disk holding the run folder is full (or the user's quota is spent)."""
