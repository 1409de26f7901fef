"""The run screen's "Try it" tab: type a prompt, read the starting model's and the trained model's
answers side by side as they are generated.

Generation runs in a child process, as training does (`python -m smoltrain.engine.chat_server RUN`,
a JSON-lines protocol: a `ready` line once the model is loaded, then `{"which", "text"}` pieces and a
`done` line per request), started on the first prompt and stopped when the screen goes. A thread
reads its output and hands each line to the UI thread, so the app never waits on it and never
imports torch.

Never imports torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Static

SETTINGS = {"temperature": 0.0, "top_p": 0.9, "max_new_tokens": 128}  # greedy: the difference is training's


class TryIt(Vertical):
    """Prompt box and two answer columns; one chat server per widget, started on first use."""

    DEFAULT_CSS = """
    TryIt { height: 1fr; }
    TryIt #try-status { height: auto; color: $text-muted; padding: 0 1; }
    TryIt Horizontal { height: 1fr; }
    TryIt VerticalScroll { width: 1fr; border: round $panel; padding: 0 1; }
    """

    def __init__(self, run_dir: Path, stage: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_dir, self.stage = run_dir, stage
        self._server: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._next_id = 0
        self._answers: dict[str, str] = {"base": "", "tuned": ""}
        self._pending: str | None = None  # a prompt typed before the model finished loading
        self._prompt = ""

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Ask the model something, then Enter (greedy answers, up to 128 tokens)", id="try-prompt")
        yield Static("The model loads in a separate process on the first prompt.", id="try-status")
        with Horizontal():
            with VerticalScroll(id="try-base-box"):
                yield Static("[b]before[/] (the starting model, adapters off)\n", id="try-base")
            with VerticalScroll(id="try-tuned-box"):
                yield Static("[b]after[/] (trained)\n", id="try-tuned")

    # --- the prompt ------------------------------------------------------------------------------

    def on_input_submitted(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        event.input.value = ""
        self._answers = {"base": "", "tuned": ""}
        self._show_answers(prompt)
        if self._server is None:
            self._start()
        if not self._ready.is_set():
            self._pending = prompt
            self._say("Loading the model in a separate process…")
            return
        self._ask(prompt)

    def _ask(self, prompt: str) -> None:
        assert self._server is not None and self._server.stdin is not None
        self._next_id += 1
        request = {"id": self._next_id, "prompt": prompt, "system": None, **SETTINGS}
        try:
            self._server.stdin.write(json.dumps(request) + "\n")
            self._server.stdin.flush()
        except OSError:
            self._say("The generation process has gone; type again to restart it.")
            self._server = None
            return
        self._say("Generating…")

    # --- the child process -----------------------------------------------------------------------

    def server_command(self) -> list[str]:
        args = [sys.executable, "-m", "smoltrain.engine.chat_server", str(self.run_dir)]
        return [*args, "--stage", self.stage] if self.stage else args

    def _start(self) -> None:
        args = self.server_command()
        self._ready.clear()
        self._server = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        text=True, bufsize=1, start_new_session=True)  # fmt: skip
        threading.Thread(target=self._read, args=(self._server,), daemon=True).start()

    def _read(self, server: subprocess.Popen[str]) -> None:
        """The reader thread: every line of the server's output goes to the UI thread."""
        assert server.stdout is not None
        for line in server.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            self.app.call_from_thread(self._take_line, message)
        self.app.call_from_thread(self._server_gone, server)

    def _take_line(self, message: dict[str, Any]) -> None:
        if message.get("ready"):
            self._ready.set()
            self._say(f"Model: {message.get('model', '?')} on {message.get('device', '?')}")
            if self._pending is not None:
                prompt, self._pending = self._pending, None
                self._ask(prompt)
        elif "error" in message:
            hint = f"\nhint: {message['hint']}" if message.get("hint") else ""
            self._say(f"[b red]error:[/] {message['error']}{hint}")
        elif message.get("done"):
            self._answers = {"base": message.get("base", ""), "tuned": message.get("tuned", "")}
            self._show_answers()
            self._say("Done. Type another prompt.")
        elif message.get("which") in self._answers:
            self._answers[message["which"]] += message.get("text", "")
            self._show_answers()

    def _server_gone(self, server: subprocess.Popen[str]) -> None:
        if server is self._server:
            self._server = None
            if not self._ready.is_set() or server.poll() not in (None, 0):
                self._say(f"The generation process exited ({server.wait()}).")

    # --- drawing ---------------------------------------------------------------------------------

    def _show_answers(self, prompt: str | None = None) -> None:
        if prompt is not None:
            self._prompt = prompt
        asked = f"[dim]{escape(self._prompt)}[/]\n\n"
        base, tuned = self.query_one("#try-base", Static), self.query_one("#try-tuned", Static)
        base.update("[b]before[/] (the starting model, adapters off)\n" + asked + escape(self._answers["base"]))
        tuned.update("[b]after[/] (trained)\n" + asked + escape(self._answers["tuned"]))

    def _say(self, text: str) -> None:
        self.query_one("#try-status", Static).update(text)

    @property
    def answers(self) -> dict[str, str]:
        return dict(self._answers)

    def stop_server(self) -> None:
        """End the child process (the screen is closing)."""
        if self._server is not None and self._server.poll() is None:
            self._server.terminate()
        self._server = None

