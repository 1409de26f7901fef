"""What a running worker is asked from outside: stop (a signal sets `StopFlag`) and "save a
checkpoint now" (a front end creates `control/save_now` in the run folder).

Imports nothing heavy: the worker needs `StopFlag` before the ML stack loads, because Unsloth must
be imported before transformers and PEFT to patch them. Never imports torch or textual.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTROL_DIR = "control"  # runs/<name>/control/
SAVE_NOW = "save_now"  # runs/<name>/control/save_now: "save a checkpoint now", from the app


@dataclass
class StopFlag:
    """Set from a signal handler; read by the callback at step boundaries."""

    requested: bool = False
