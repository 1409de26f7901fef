"""The ML libraries' own warnings (Python `warnings` and the loggers of TRL, PEFT, accelerate,
datasets and transformers) as smoltrain warning events, each distinct text once, so a user sees what
TRL says about the run where they watch it, not only in worker.log (which keeps every one as before).

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

import logging
import warnings
from typing import TextIO

from smoltrain.engine.events import Emit
from smoltrain.engine.events import Warning as WarningEvent

LIBRARY_LOGGERS = ("trl", "peft", "accelerate", "datasets", "transformers", "bitsandbytes")
MAX_DISTINCT = 20  # past this, a library repeating itself in new words is noise: worker.log has the rest
SAME_OPENING = 60  # two warnings that open with the same characters are one warning with other values
MAX_SHOWN = 300


class LibraryWarnings(logging.Handler):
    """Installed once per worker: `install()`, then every library warning reaches `emit` once."""

    def __init__(self, emit: Emit) -> None:
        super().__init__(level=logging.WARNING)
        self._emit = emit
        self._seen: set[str] = set()
        self._show = warnings.showwarning

    def install(self) -> None:
        warnings.showwarning = self._on_warning
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).addHandler(self)

    def uninstall(self) -> None:
        warnings.showwarning = self._show
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).removeHandler(self)

    def _on_warning(self, message: Warning | str, category: type[Warning], filename: str, lineno: int,
                    file: TextIO | None = None, line: str | None = None) -> None:  # fmt: skip
        self._show(message, category, filename, lineno, file, line)  # worker.log keeps it as before
        self._say(f"{category.__name__}: {message}", where=_package(filename))

    def emit(self, record: logging.LogRecord) -> None:  # logging.Handler's hook, not an event
        self._say(record.getMessage(), where=record.name.split(".")[0])

    def _say(self, text: str, where: str) -> None:
        text = " ".join(text.split())
        # Its opening words: TRL repeats "All reward functions returned None for the following kwargs:
        # {...}" with each batch's values, which are not news.
        key = text[:SAME_OPENING]
        if not text or key in self._seen or len(self._seen) >= MAX_DISTINCT:
            return
        self._seen.add(key)
        if len(text) > MAX_SHOWN:
            text = text[:MAX_SHOWN] + " … (in full in worker.log)"
        try:
            self._emit(WarningEvent(message=f"{where}: {text}", source="library"))
        except OSError:  # a full disk: the run's own next write reports it; a warning must not be what fails
            return


def _package(filename: str) -> str:
    """`.../site-packages/transformers/modeling_utils.py` -> `transformers`."""
    parts = filename.replace("\\", "/").split("/")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1]
    return parts[-1] if parts else "python"

