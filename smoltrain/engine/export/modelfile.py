"""An Ollama Modelfile that chats in the trained format: the chat template as an Ollama TEMPLATE, and
its end-of-turn marker as a stop. Without them an exported model rambles on (ollama issue #8363).

    form = turn_format(tokenizer)              # ModelError if the template has no turn-by-turn form
    form.render(turns)                         # what the TEMPLATE renders (a check against the template)
    text = modelfile(form, "model.gguf", ...)  # FROM, TEMPLATE, PARAMETER stop

The form is found, not looked up in a per-family table: the tokenizer's own chat template renders
probe conversations whose contents are placeholders, and the text around the placeholders is what
opens and closes each role's turn, what opens a conversation with and without a system turn, and the
generation prompt. A template that refuses system turns, or drops them, gets the system text folded
into the first user turn, as training did (data.chat_template.fold_system); one that writes it into
the last user turn (Mistral's) gets that. The form is then checked by rendering real-looking
conversations both ways; a template it cannot reproduce (content-dependent formats) is a ModelError
rather than a Modelfile that silently chats in another format.

The TEMPLATE uses a few constructs of Go's text/template, as Ollama's own templates do (`range` over
.Messages, `if`/`else if`, `eq`, `len`, `slice`, variables), with every piece of literal text inside a
quoted string action, so no whitespace outside the actions reaches the prompt.

Imports the chat template prober (transformers, maybe TRL); never torch's models or textual.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from smoltrain.engine.data.chat_template import ChatTemplate, has_chat_template
from smoltrain.engine.data.convert import RowRejected, Turn
from smoltrain.errors import ModelError

_SYSTEM, _USER, _ANSWER, _AGAIN = "probeSystemText", "probeUserOne", "probeAnswerOne", "probeUserTwo"
# Real-looking turns for the check: spaces, punctuation, a second exchange.
_CHECK_SYSTEM = "You answer in one short sentence."
_CHECK_TURNS = ("What is two plus two?", "Two plus two is four.", "And three plus three?", "Six.", "Thanks! Bye.")


@dataclass(frozen=True)
class TurnFormat:
    """A chat format as pieces of text: each conversation is an opening, its turns, and a generation prompt."""

    prefix: str  # opens a conversation without a system block (a default system block, BOS, or nothing)
    system: tuple[str, str]  # (before, after) the system text, opening a conversation with one (system_at "block")
    system_at: str  # "block"; "first_user" / "last_user": its text and a blank line start that user turn instead
    user: tuple[str, str]  # (open, close) around a user turn's content
    assistant: tuple[str, str]  # (open, close); the close follows every answer but a last one
    header: str  # the generation prompt after the last user turn
    stops: tuple[str, ...]  # the end-of-turn marker(s)

    def render(self, turns: Sequence[Turn]) -> str:
        """A conversation ending with a user turn, as the TEMPLATE renders it (with Ollama's system text:
        all system turns joined by a blank line)."""
        system = "\n\n".join(t["content"] for t in turns if t["role"] == "system")
        block = system and self.system_at == "block"
        text = f"{self.system[0]}{system}{self.system[1]}" if block else self.prefix
        rest = [t for t in turns if t["role"] != "system"]
        first_user = next((i for i, t in enumerate(rest) if t["role"] == "user"), None)
        for i, turn in enumerate(rest):
            last = i == len(rest) - 1
            if turn["role"] == "user":
                here = i == first_user if self.system_at == "first_user" else last and self.system_at == "last_user"
                folded = f"{system}\n\n" if system and here else ""
                text += f"{self.user[0]}{folded}{turn['content']}{self.user[1]}" + (self.header if last else "")
            elif turn["role"] == "assistant":
                text += self.assistant[0] + turn["content"] + ("" if last else self.assistant[1])
        return text

    def without_leading(self, token: str) -> TurnFormat:
        """The form without `token` (BOS) at the start of the conversation: for a GGUF that adds it itself."""

        def strip(text: str) -> str:
            return text[len(token) :] if token and text.startswith(token) else text

        return replace(self, prefix=strip(self.prefix), system=(strip(self.system[0]), self.system[1]))

    def go_template(self) -> str:
        """The Ollama TEMPLATE (Go text/template) that renders what `render` does. Every line starts with a
        trimming action, so the line breaks between them never reach the prompt."""
        if self.system_at == "block":
            opening = [f"{{{{- if .System }}}}{_text(self.system[0])}{{{{ .System }}}}{_text(self.system[1])}",
                       *([f"{{{{- else }}}}{_text(self.prefix)}"] if self.prefix else []), "{{- end }}"]  # fmt: skip
        else:
            opening = [f"{{{{- $first := true }}}}{_text(self.prefix)}"]
        fold = {"block": "", "last_user": "{{ if and $last $.System }}",
                "first_user": "{{ if and $first $.System }}"}[self.system_at]  # fmt: skip
        if fold:
            fold += f"{{{{ $.System }}}}{_text(chr(10) * 2)}{{{{ end }}}}"
        if self.system_at == "first_user":
            fold += "{{ $first = false }}"
        lines = [
            *opening,
            "{{- range $i, $_ := .Messages }}",
            "{{- $last := eq (len (slice $.Messages $i)) 1 }}",
            '{{- if eq .Role "user" }}',
            f"{_text(self.user[0])}{fold}{{{{ .Content }}}}{_text(self.user[1])}",
            *([f"{{{{- if $last }}}}{_text(self.header)}{{{{ end }}}}"] if self.header else []),
            '{{- else if eq .Role "assistant" }}',
            f"{_text(self.assistant[0])}{{{{ .Content }}}}",
            *([f"{{{{- if not $last }}}}{_text(self.assistant[1])}{{{{ end }}}}"] if self.assistant[1] else []),
            "{{- end }}",
            "{{- end }}",
        ]
        return "\n".join(line if line.startswith("{{-") else "{{-" + line.removeprefix("{{") for line in lines)


def turn_format(tokenizer: Any) -> TurnFormat:
    """The trained chat template's format, found by probing it and checked against it (ModelError if it has none)."""
    if not has_chat_template(tokenizer):
        raise ModelError("the trained tokenizer has no chat template, so Ollama cannot be told the chat format",
                         hint="export --to gguf and write the Modelfile's TEMPLATE for it by hand")  # fmt: skip
    template = ChatTemplate(tokenizer)
    try:
        form = _probe(template)
    except (RowRejected, ValueError) as exc:
        raise ModelError(f"the chat template has no turn-by-turn form an Ollama TEMPLATE can reproduce ({exc})",
                         hint="export --to gguf and write the Modelfile's TEMPLATE by hand (docs/export.md)") from None  # fmt: skip
    return form


def _probe(template: ChatTemplate) -> TurnFormat:
    """The pieces, from renders (with the generation prompt, as at inference) of probe conversations."""
    user, answer, again = _turn("user", _USER), _turn("assistant", _ANSWER), _turn("user", _AGAIN)
    render = partial(template.render, generation_prompt=True)
    opening, after_user, between, closing = _split(render([user, answer, again]), [_USER, _ANSWER, _AGAIN])
    header = template.header
    if not closing.endswith(header) or not after_user.startswith(closing[: len(closing) - len(header)]):
        raise ValueError("a user turn closes differently when an answer follows")
    user_close = closing[: len(closing) - len(header)]
    assistant_open = after_user[len(user_close) :]
    cut = _between_turns(template, opening, between, user_close)
    user_open, assistant_close = between[cut:], between[:cut]
    prefix = opening[: len(opening) - len(user_open)]
    if render([user]) != f"{prefix}{user_open}{_USER}{closing}":
        raise ValueError("a conversation's first user turn is rendered differently from a later one")
    system, system_at = _system_form(template, user_open, closing)
    form = TurnFormat(prefix=prefix, system=system, system_at=system_at, user=(user_open, user_close),
                      assistant=(assistant_open, assistant_close), header=header, stops=_stops(template))  # fmt: skip
    _check(form, template)
    return form


def _between_turns(template: ChatTemplate, opening: str, between: str, user_close: str) -> int:
    """Where an answer's close ends and the next user turn's open begins, in the text between them (at a
    token boundary the first user turn's opening agrees with): as a user turn closes where that fits,
    else the earliest such place."""
    offsets = template.tokenizer(between, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    bounds = sorted({0, len(between), *(start for start, _ in offsets)})
    candidates = [k for k in bounds if opening.endswith(between[k:])]
    like_user = len(_common_prefix(between, user_close))
    return like_user if like_user in candidates else candidates[0]


def _system_form(template: ChatTemplate, user_open: str, closing: str) -> tuple[tuple[str, str], str]:
    """Where a system turn goes: a block of its own ((before, after) its text), or into a user turn: the first
    (where the template refuses or drops it, training folded it there) or the last (Mistral's templates)."""
    system, user = _turn("system", _SYSTEM), _turn("user", _USER)
    turns = [system, user, _turn("assistant", _ANSWER), _turn("user", _AGAIN)]
    try:
        text = template.render([system, user], generation_prompt=True)
        longer = template.render(turns, generation_prompt=True)
    except RowRejected:
        return ("", ""), "first_user"  # refused (Gemma): training folded it
    if _SYSTEM not in text:
        return ("", ""), "first_user"  # dropped: training folded it
    before, middle, end = _split(text, [_SYSTEM, _USER])
    if end == closing and middle.endswith(user_open) and not (user_open and before.endswith(user_open)):
        return (before, middle[: len(middle) - len(user_open)]), "block"
    folded = f"{_SYSTEM}\n\n"
    if longer == template.render([turns[1], turns[2], _turn("user", folded + _AGAIN)], generation_prompt=True):
        return ("", ""), "last_user"
    if longer == template.render([_turn("user", folded + _USER), *turns[2:]], generation_prompt=True):
        return ("", ""), "first_user"
    raise ValueError("a system turn goes where no Ollama TEMPLATE of this form can put it")


def _stops(template: ChatTemplate) -> tuple[str, ...]:
    stops = [template.end_of_turn] if template.end_of_turn else []
    eos = getattr(template.tokenizer, "eos_token", None)
    if isinstance(eos, str) and eos and eos not in stops:
        stops.append(eos)
    return tuple(stops)


def _check(form: TurnFormat, template: ChatTemplate) -> None:
    system = _turn("system", _CHECK_SYSTEM)
    first, answer, second, answer2, third = (_turn("user" if i % 2 == 0 else "assistant", text)
                                             for i, text in enumerate(_CHECK_TURNS))  # fmt: skip
    for turns in ([first], [system, first], [first, answer, second], [system, first, answer, second],
                  [first, answer, second, answer2, third]):  # fmt: skip
        fitted, _ = template.fit(list(turns), generation_prompt=True)
        expected = template.render(fitted, generation_prompt=True)
        if form.render(turns) != expected:
            raise ValueError(f"rendering a {len(turns)}-turn conversation gave {form.render(turns)!r}, not {expected!r}")


def _split(text: str, markers: list[str]) -> list[str]:
    """`text` cut at each marker (each must appear once, in order): the len(markers) + 1 pieces around them."""
    pieces, rest = [], text
    for marker in markers:
        if rest.count(marker) != 1:
            raise ValueError(f"the probe text {marker!r} appears {rest.count(marker)} times in the render")
        head, rest = rest.split(marker)
        pieces.append(head)
    return [*pieces, rest]


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _turn(role: str, content: str) -> Turn:
    return {"role": role, "content": content}


def _text(text: str) -> str:
    """A literal piece of the prompt as a Go template action ({{ "..." }}); nothing for an empty one.
    Quotes become \\x22, so the TEMPLATE never holds the Modelfile's closing triple quote."""
    if not text:
        return ""
    escapes = {"\\": "\\\\", '"': "\\x22", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    quoted = "".join(escapes.get(ch, f"\\x{ord(ch):02x}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch) for ch in text)
    return f'{{{{ "{quoted}" }}}}'


def modelfile(form: TurnFormat, gguf_name: str, *, made_from: str, create: str) -> str:
    """The Modelfile: the GGUF beside it, the TEMPLATE, and a stop for each end-of-turn marker."""
    stops = [f'PARAMETER stop "{stop}"' for stop in form.stops if '"' not in stop]
    return "\n".join([
        f"# {made_from}, exported by smoltrain. Make it an Ollama model with:",
        f"#   {create}",
        f"FROM ./{gguf_name}",
        f'TEMPLATE """{form.go_template()}"""',
        *stops,
        "",
    ])  # fmt: skip
