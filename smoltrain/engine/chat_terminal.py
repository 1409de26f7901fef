"""`smoltrain chat RUN_DIR`: talk to a run's trained model in the terminal (the REPL; the model and
the conversation come from chat.py, which the app's chat server shares).

    smoltrain chat runs/demo-sft-20260101-120000 [--stage NAME] [--compare] [--temperature 0]

The chat: a "you> " line, the answer streamed under its label ("tuned> ", or the stage's name), the
conversation kept until /reset (its oldest exchanges forgotten once they no longer fit the model's
context), settings as flags and as /commands (/help lists them). Ctrl-C stops
an answer (that exchange is left out of the history), Ctrl-D or /quit leaves. With --compare each
prompt is answered by the base and the tuned model, each in its own conversation. In a terminal at
least COMPARE_MIN_WIDTH wide the two answers end up side by side: while they are generated (base
first, then tuned) one status line shows the tail of the one being written, so nothing is printed
twice, and the two columns follow. On a pipe or a narrow terminal they stream one after the other,
each under its label. No tty: plain lines, the prompt echoed, no colors (nor with NO_COLOR).

Runs in the CLI's process. Never imports textual; torch, transformers and peft only once a run
folder has been checked (through chat.py's loading).
"""

from __future__ import annotations

import os
import shutil
import sys
import textwrap
from itertools import zip_longest
from pathlib import Path
from typing import TextIO

from smoltrain.engine.chat import (
    ChatModel,
    ChatSettings,
    Conversation,
    find_model,
    load_model,
)
from smoltrain.errors import ConfigError

COMPARE_MIN_WIDTH = 72  # two columns of 34: narrower, the answers come one after the other


# --- the terminal ------------------------------------------------------------------------------------

COMMANDS = {
    "/temperature T": "sampling temperature; 0 answers greedily (the same answer every time)",
    "/top_p P": "sample from the likeliest tokens up to probability P (0 < P <= 1)",
    "/max_new_tokens N": "the longest answer, in tokens",
    "/system TEXT": "the system prompt (/system alone clears it)",
    "/reset": "forget the conversation and start a new one",
    "/compare": "answer with the base model too, side by side (on/off)",
    "/help": "this list",
    "/quit": "leave (also Ctrl-D); Ctrl-C stops an answer",
}


_COLORS = {"you": "1", "base": "1;33", "tuned": "1;32", "note": "2"}


class Terminal:
    """Where the chat reads and writes: a tty gets line editing, colors and the two-column view; a
    pipe gets plain lines (the prompt echoed, so the transcript reads as a conversation)."""

    def __init__(self, stdin: TextIO, stdout: TextIO) -> None:
        self.stdin, self.out = stdin, stdout
        self.interactive = stdin.isatty() and stdout.isatty()
        self.tty = stdout.isatty()
        self.color = self.tty and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb"
        self.unicode = (getattr(stdout, "encoding", "") or "").lower().replace("-", "").startswith("utf")
        self._status = 0  # width of the status line on screen, to blank it
        if self.interactive:
            try:
                import readline  # noqa: F401  (input() gets line editing and a history)
            except ImportError:  # pragma: no cover - Windows
                pass

    def paint(self, text: str, kind: str, for_input: bool = False) -> str:
        if not self.color:
            return text
        start, end = f"\x1b[{_COLORS[kind]}m", "\x1b[0m"
        if for_input:  # readline counts the prompt's width: escapes are marked as taking none
            start, end = f"\001{start}\002", f"\001{end}\002"
        return start + text + end

    def read(self) -> str:
        """The next line typed; EOFError at the end (Ctrl-D), KeyboardInterrupt on Ctrl-C."""
        if self.interactive:
            return input(self.paint("you>", "you", for_input=True) + " ")
        line = self.stdin.readline()
        if not line:
            raise EOFError
        self.out.write(f"you> {line.rstrip(chr(10))}\n")
        return line

    def note(self, text: str) -> None:
        self.out.write(self.paint(text, "note") + "\n")
        self.out.flush()

    def label(self, name: str, kind: str) -> None:
        self.write(self.paint(f"{name}>", kind) + " ")

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    @property
    def width(self) -> int:
        return shutil.get_terminal_size().columns

    def fits_columns(self) -> bool:
        return self.tty and self.width >= COMPARE_MIN_WIDTH

    def status(self, name: str, kind: str, text: str) -> None:
        """One line, rewritten in place: the tail of the answer being generated."""
        room = self.width - len(name) - 5  # and 2 for the "^C" a terminal echoes on Ctrl-C
        flat = " ".join(text.split())
        shown = flat if len(flat) <= room else "…" + flat[-(room - 1) :]
        self.write("\r" + " " * self._status + "\r" + self.paint(f"{name}>", kind) + " " + shown)
        self._status = len(name) + 2 + len(shown)

    def clear_status(self) -> None:
        if self._status:
            self.write("\r" + " " * self._status + "\r")
            self._status = 0

    def end_line(self) -> None:
        """After a stopped answer: what it had said stays on the screen, the next line starts below it."""
        self._status = 0
        self.write("\n")

    def columns(self, left: tuple[str, str, str], right: tuple[str, str, str]) -> None:
        """Two answers side by side: (label, kind, text) each, wrapped to half the width."""
        bar, rule, cross = ("│", "─", "┼") if self.unicode else ("|", "-", "+")
        col = (self.width - 3) // 2
        head = f"{self.paint(left[0].ljust(col), left[1])} {bar} {self.paint(right[0], right[1])}"
        lines = [head, f"{rule * col}{rule}{cross}{rule}{rule * col}"]
        for a, b in zip_longest(_wrap(left[2], col), _wrap(right[2], col), fillvalue=""):
            lines.append(f"{a.ljust(col)} {bar} {b}".rstrip())
        self.write("\n".join(lines) + "\n")


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in (text or "(no answer)").split("\n"):
        lines += textwrap.wrap(paragraph, width, replace_whitespace=False, drop_whitespace=True) or [""]
    return lines


class _Live:
    """Streams an answer into the terminal's status line."""

    def __init__(self, term: Terminal, name: str, kind: str) -> None:
        self.term, self.name, self.kind, self.text = term, name, kind, ""

    def __call__(self, piece: str) -> None:
        self.text += piece
        self.term.status(self.name, self.kind, self.text)


def run_terminal(chat: ChatModel, settings: ChatSettings, term: Terminal) -> int:
    """The chat loop: a line from the user, a command or a prompt, until /quit or the end of input."""
    conv = Conversation(chat, settings)
    term.note(f"chat with {chat.target.description} on {chat.device}")
    if not chat.has_template:
        term.note("this model has no chat template: each prompt is sent alone, as plain text")
    term.note(f"{settings.describe()}; /help lists the commands, /quit or Ctrl-D leaves")
    interrupted = False
    while True:
        try:
            text = term.read().strip()
        except EOFError:
            if term.interactive:
                term.write("\n")
            return 0
        except KeyboardInterrupt:
            if interrupted:
                term.write("\n")
                return 0
            interrupted = True
            term.write("\n")
            term.note("(Ctrl-C again, /quit or Ctrl-D leaves)")
            continue
        interrupted = False
        if text.startswith("/"):
            if not _command(text, conv, term):
                return 0
        elif text:
            _ask(text, conv, term)


def _command(text: str, conv: Conversation, term: Terminal) -> bool:
    """Carry out a /command; False for /quit."""
    settings = conv.settings
    name, _, arg = text.partition(" ")
    name, arg = name.lower().replace("-", "_"), arg.strip()
    if name in ("/quit", "/exit", "/bye"):
        return False
    if name in ("/temperature", "/top_p", "/max_new_tokens"):
        key = name[1:]
        if not arg:
            term.note(f"{key} {getattr(settings, key):g}")
            return True
        try:
            value = int(arg) if key == "max_new_tokens" else float(arg)
            ChatSettings(**{**settings.__dict__, key: value}).check(flags=False)
        except ValueError:
            term.note(f"{name} {arg}: not a {'whole ' if key == 'max_new_tokens' else ''}number")
            return True
        except ConfigError as exc:
            term.note(f"{exc.message} ({exc.hint})")
            return True
        setattr(settings, key, value)
        term.note(f"{key} {value:g}")
    elif name == "/system":
        settings.system = arg or None
        term.note(f"system prompt: {arg!r}" if arg else "system prompt cleared")
    elif name == "/reset":
        conv.reset()
        term.note("conversation cleared")
    elif name == "/compare":
        settings.compare = not settings.compare
        if settings.compare:
            conv.reset("base")  # its conversation starts now: no answers of the tuned model put in its mouth
        term.note("compare on: the base model answers too, in its own conversation" if settings.compare else "compare off")
    elif name == "/help":
        width = max(map(len, COMMANDS))
        for command, says in COMMANDS.items():
            term.note(f"  {command.ljust(width)}  {says}")
        term.note(f"now: {settings.describe()}")
    else:
        term.note(f"unknown command {name}: /help lists the commands")
    return True


def _ask(text: str, conv: Conversation, term: Terminal) -> None:
    """Answer `text` with the tuned model (and the base, comparing), streamed; Ctrl-C stops it."""
    from smoltrain.engine.data.convert import RowRejected

    chat, settings = conv.chat, conv.settings
    who = ["base", "tuned"] if settings.compare else ["tuned"]
    names = {"base": "base", "tuned": chat.target.label}
    side_by_side = settings.compare and term.fits_columns()
    answers: dict[str, str] = {}
    forgotten = conv.forgotten
    try:
        for which in who:
            prompt = conv.prompt(which, text)
            if side_by_side:
                answers[which] = chat.answer(which, prompt, settings, on_text=_Live(term, names[which], which))
            else:
                term.label(names[which], which)
                answers[which] = chat.answer(which, prompt, settings, on_text=term.write)
                term.write("\n" if answers[which] else term.paint("(no answer)", "note") + "\n")
        if side_by_side:
            term.clear_status()
            term.columns(("base", "base", answers["base"]), (names["tuned"], "tuned", answers["tuned"]))
    except KeyboardInterrupt:
        term.end_line()
        term.note("(stopped: this exchange is left out of the conversation)")
        return
    except RowRejected as exc:
        term.clear_status()
        term.note(f"the chat template refuses this conversation: {exc} (/reset starts a new one)")
        return
    if conv.forgotten > forgotten:
        term.note(f"(the oldest turns no longer fit in the model's {chat.context_limit}-token context: left out)")
    for which, answer in answers.items():
        conv.add(which, text, answer)


def chat_main(run_dir: Path, *, stage: str | None, compare: bool, temperature: float, top_p: float,
              max_new_tokens: int, system: str | None) -> int:  # fmt: skip
    """`smoltrain chat`: the exit code; a SmoltrainError for a user error (the CLI prints it, exit 2)."""
    settings = ChatSettings(temperature, top_p, max_new_tokens, system or None, compare)
    settings.check()
    target = find_model(run_dir, stage)
    if sys.stderr.isatty():  # the imports and weights take seconds: say what is coming
        print(f"loading {target.description} ...", file=sys.stderr, flush=True)
    chat = load_model(target)
    return run_terminal(chat, settings, Terminal(sys.stdin, sys.stdout))
