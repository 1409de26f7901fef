"""The stop request a running worker watches: `StopFlag`, set by the worker's signal handler and read
by the trainer callback at step boundaries. (The other request, "save a checkpoint now", is a file in
the run folder: `RunDir.save_now`, smoltrain/rundir.py.)

Imports nothing heavy: the worker needs `StopFlag` before the ML stack loads, because Unsloth must
be imported before transformers and PEFT to patch them. Never imports torch or textual.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StopFlag:
    """Set from a signal handler; read by the callback at step boundaries."""

    requested: bool = False
