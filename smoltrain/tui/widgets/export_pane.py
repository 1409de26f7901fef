"""The Result tab's exports: merged safetensors, GGUF, an Ollama model, each one button away.

A button runs `smoltrain export RUN --to FORMAT` as a child process (the app never imports torch)
and shows its output as it comes, so the size check, the converter's progress and the `ollama
create` command to run appear here exactly as in a terminal.

Never imports torch.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Static

FORMATS = (("merged", "Merged (safetensors)"), ("gguf", "GGUF (llama.cpp, LM Studio)"), ("ollama", "Ollama"))


class ExportPane(Vertical):
    DEFAULT_CSS = """
    ExportPane { height: auto; }
    ExportPane Horizontal { height: auto; }
    ExportPane Button { margin-right: 1; }
    ExportPane #export-log { height: auto; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, run_dir: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_dir = run_dir
        self._running: subprocess.Popen[str] | None = None
        self._output: list[str] = []

    def compose(self) -> ComposeResult:
        with Horizontal():
            for name, label in FORMATS:
                yield Button(f"Export: {label}", id=f"export-{name}")
        yield Static("", id="export-log")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if not (event.button.id or "").startswith("export-"):
            return
        event.stop()
        if self._running is not None and self._running.poll() is None:
            self.app.notify("An export is running; wait for it to finish.", severity="warning")
            return
        self.run_export(event.button.id.removeprefix("export-"))

    def run_export(self, to: str) -> None:
        command = [sys.executable, "-m", "smoltrain.cli", "export", str(self.run_dir), "--to", to]
        self._output = [f"$ smoltrain export {self.run_dir} --to {to}"]
        self._redraw_log()
        self._running = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                         stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        threading.Thread(target=self._read, args=(self._running,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.app.call_from_thread(self._append_line, line.rstrip("\n"))
        code = process.wait()
        self.app.call_from_thread(self._append_line, "done." if code == 0 else f"export failed (exit {code})")

    def _append_line(self, line: str) -> None:
        self._output = [*self._output[-40:], line]
        self._redraw_log()

    def _redraw_log(self) -> None:
        self.query_one("#export-log", Static).update("\n".join(escape(line) for line in self._output))

    @property
    def output(self) -> list[str]:
        return list(self._output)
