"""The chat child process of the terminal app: a run's tuned model and its base, over JSON lines.

    python -m smoltrain.engine.chat_server RUN_DIR [--stage NAME]

The model loads as `smoltrain chat` loads it (chat.py: one copy of the weights, "base" with the
adapter switched off). Then, one JSON object per line, each line flushed:

    out  {"ready": true, "model": "<base> + <adapter>", "device": "cpu"}
    in   {"id": 1, "prompt": "text", "system": null, "temperature": 0.7, "top_p": 0.9, "max_new_tokens": 256}
    out  {"id": 1, "which": "base", "text": "<piece>"}      ... the base answer as it streams, then
    out  {"id": 1, "which": "tuned", "text": "<piece>"}     ... the tuned one
    out  {"id": 1, "done": true, "base": "<full>", "tuned": "<full>"}   (each the pieces joined)

Each request is a fresh single-turn conversation; only "prompt" is required (the rest default as
above). A user error while loading: `{"error": ..., "hint": ...}` and exit 2; a request that is not
valid: `{"id": ..., "error": ...}` and the next line is read. SIGINT while answering stops that
request with `{"id": ..., "stopped": true}` (no done line) and the server reads on; the end of
stdin (or SIGINT while waiting): exit 0. Library noise goes to stderr; stdout carries the protocol only.

A child process because the app never imports torch (and its GPU memory returns only at exit).
Never imports textual.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from smoltrain.engine.chat import ChatModel, ChatSettings, find_model, load_model
from smoltrain.errors import USER_ERROR_EXIT_CODE, ConfigError, SmoltrainError

DEFAULTS = ChatSettings()


class BadRequest(Exception):
    pass


def write(out: TextIO, message: dict[str, Any]) -> None:
    out.write(json.dumps(message, ensure_ascii=False) + "\n")
    out.flush()


def parse_request(line: str) -> tuple[Any, str, ChatSettings]:
    """(id, prompt, settings) of one request line; BadRequest saying what is wrong (and the id if it has one)."""
    try:
        request = json.loads(line)
    except ValueError as exc:
        raise BadRequest(None, f"not JSON: {exc}") from None
    if not isinstance(request, dict):
        raise BadRequest(None, "a request is a JSON object")
    rid = request.get("id")
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadRequest(rid, "prompt: a non-empty string is required")
    system = request.get("system")
    if system is not None and not isinstance(system, str):
        raise BadRequest(rid, "system: a string or null")
    try:
        settings = ChatSettings(
            temperature=_number(request, "temperature", DEFAULTS.temperature),
            top_p=_number(request, "top_p", DEFAULTS.top_p),
            max_new_tokens=int(_number(request, "max_new_tokens", DEFAULTS.max_new_tokens, whole=True)),
            system=system or None,
        )
        settings.check(flags=False)
    except ConfigError as exc:
        raise BadRequest(rid, exc.message.lstrip("/")) from None
    return rid, prompt, settings


def _number(request: dict[str, Any], key: str, default: float, whole: bool = False) -> float:
    value = request.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and value != int(value)):
        raise ConfigError(f"{key}: {'a whole number' if whole else 'a number'}, not {value!r}")
    return float(value)


def answer(chat: ChatModel, rid: Any, prompt: str, settings: ChatSettings, out: TextIO) -> None:
    """Both answers of one request, streamed, then the done line."""
    turns = [{"role": "system", "content": settings.system}] if settings.system else []
    turns.append({"role": "user", "content": prompt})
    full: dict[str, str] = {}
    for which in ("base", "tuned"):
        pieces: list[str] = []

        def on_text(piece: str, which: str = which, pieces: list[str] = pieces) -> None:
            pieces.append(piece)
            write(out, {"id": rid, "which": which, "text": piece})

        chat.answer(which, chat.fit(turns) if chat.has_template else prompt, settings, on_text=on_text)
        full[which] = "".join(pieces)  # what the app was shown; generate's answer is the same text
    write(out, {"id": rid, "done": True, **full})


def serve(chat: ChatModel, lines: TextIO, out: TextIO) -> int:
    from smoltrain.engine.data.convert import RowRejected

    write(out, {"ready": True, "model": chat.target.description, "device": chat.device})
    try:
        for line in lines:
            if not line.strip():
                continue
            rid: Any = None
            try:
                rid, prompt, settings = parse_request(line)
                answer(chat, rid, prompt, settings, out)
            except BadRequest as exc:
                write(out, {"id": exc.args[0], "error": exc.args[1]})
            except RowRejected as exc:
                write(out, {"id": rid, "error": f"the chat template refuses this conversation: {exc}"})
            except KeyboardInterrupt:  # SIGINT from the app: stop this answer, not the server
                write(out, {"id": rid, "stopped": True})
    except KeyboardInterrupt:  # while waiting for a request: leave as at the end of input
        pass
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smoltrain.engine.chat_server", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--stage")
    args = parser.parse_args(argv)
    try:
        chat = load_model(find_model(Path(args.run_dir), args.stage))
    except SmoltrainError as exc:
        write(sys.stdout, {"error": exc.message, "hint": exc.hint})
        return USER_ERROR_EXIT_CODE
    return serve(chat, sys.stdin, sys.stdout)


if __name__ == "__main__":
    sys.exit(main())
