"""Turn rows into TRL's dataset formats: the readers every converter shares, SFT's converters, and the drop count.

A reader returns a value in TRL's form or raises RowProblem, whose message is the reason counted in
DataReport.dropped ("empty assistant content", "prompt ends with an assistant turn"). Reasons name
the user's own column, so they can find it in their file. A row with a problem is never passed on
silently: it is dropped, and the reason counted, with the first place it happened. Too many drops
mean the shape or the column mapping is wrong, and that is an error (see prepare.py).

SFTTrainer takes three formats: {"text"}, {"messages": [{"role", "content"}, ...]} and
{"prompt", "completion"}. Each source shape maps to one of them (detect.TRL_FORMAT); instruction and
ShareGPT rows become chats, so the chat template and completion-only loss apply to them as well.
Preference pairs are converted in convert_preference.py, GRPO prompts in convert_prompts.py.

Pure Python (no datasets, torch or textual).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from smoltrain.engine.data.detect import Detected

Row = Mapping[str, Any]
Turn = dict[str, str]
Converter = Callable[[Row], dict[str, Any]]

# Role names found in the wild -> the three a chat template understands. Anything else (tool,
# function, observation, ...) is a problem row: templates differ too much to guess what it means.
ROLES: dict[str, str] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "model": "assistant",
}


class RowProblem(Exception):
    """Why one row cannot be used; the message is the reason counted in DataReport.dropped."""


class RowRejected(Exception):
    """A row the model's chat template refuses: not a row to drop quietly but a stop, naming the row
    and the template's own message (a wrong role order in one row usually means in many)."""

    index: int = -1  # the row's index in its split, set by convert_rows


class RowInvalid(Exception):
    """A value no row may have, such as a KTO label that is missing or not a boolean: a stop naming the
    row and the key (prepare.py), not a drop, because a guessed or skipped label would train the wrong way."""

    index: int = -1  # the row's index in its split, set by convert_rows

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


def read_text(value: Any, column: str) -> str:
    """A non-blank string."""
    if value is None:
        raise RowProblem(f"missing {column}")
    if not isinstance(value, str):
        raise RowProblem(f"{column} is not text")
    if not value.strip():
        raise RowProblem(f"empty {column}")
    return value


def read_turns(value: Any, column: str) -> list[Turn]:
    """A non-empty list of turns in OpenAI ({role, content}) or ShareGPT ({from, value}) style, as {role, content}."""
    if value is None:
        raise RowProblem(f"missing {column}")
    if not isinstance(value, list):
        raise RowProblem(f"{column} is not a list of turns")
    if not value:
        raise RowProblem(f"empty {column}")
    turns: list[Turn] = []
    for turn in value:
        if not isinstance(turn, Mapping):
            raise RowProblem(f"{column} has a turn that is not an object")
        # Arrow-backed hub rows carry every key of the column's struct, unused ones as None.
        role = turn.get("role") if turn.get("role") is not None else turn.get("from")
        content = turn.get("content") if turn.get("content") is not None else turn.get("value")
        if role is None:
            raise RowProblem("turn without a role")
        if not isinstance(role, str) or role.strip().lower() not in ROLES:
            raise RowProblem(f"unknown role {str(role)[:30]!r}")
        role = ROLES[role.strip().lower()]
        if content is None:
            raise RowProblem(f"{role} turn without content")
        if not isinstance(content, str):
            raise RowProblem(f"{role} content is not text")
        # An empty system prompt is harmless; an empty user or assistant turn teaches nonsense.
        if role != "system" and not content.strip():
            raise RowProblem(f"empty {role} content")
        turns.append({"role": role, "content": content})
    return turns


def read_text_or_turns(value: Any, column: str, conversational: bool) -> str | list[Turn]:
    """Turns if the dataset's rows are chats (decided once, from the first row), else text."""
    return read_turns(value, column) if conversational else read_text(value, column)


def check_prompt(prompt: str | list[Turn], column: str = "prompt") -> None:
    """A prompt of turns ends with the user's: the model answers it (system-only or answered prompts do not)."""
    if isinstance(prompt, list) and prompt[-1]["role"] != "user":
        raise RowProblem(f"{column} ends with {_a(prompt[-1]['role'])} turn")


def check_answer(answer: str | list[Turn], column: str) -> None:
    """Answer turns end with the assistant's: that is the turn the model is trained (or scored) on."""
    if isinstance(answer, list) and answer[-1]["role"] != "assistant":
        raise RowProblem(f"{column} does not end with an assistant turn")


def _a(role: str) -> str:
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


# --- counting -----------------------------------------------------------------------------------


@dataclass
class Converted:
    rows: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    first_at: dict[str, int] = field(default_factory=dict)  # reason -> index of the first row it hit


def convert_rows(rows: Iterable[Row], convert: Converter) -> Converted:
    """Convert every row with `convert`, dropping and counting the ones it raises RowProblem for."""
    out = Converted()
    for index, row in enumerate(rows):
        try:
            out.rows.append(convert(row))
        except RowProblem as problem:
            reason = str(problem)
            out.dropped[reason] += 1
            out.first_at.setdefault(reason, index)
        except (RowRejected, RowInvalid) as stop:
            stop.index = index
            raise
    return out


# --- SFT ----------------------------------------------------------------------------------------


def sft_converter(detected: Detected) -> Converter:
    """The function that turns one row of `detected`'s shape into an SFT example, or raises RowProblem."""
    f = detected.fields
    if detected.shape == "text":
        return lambda row: {"text": read_text(row.get(f["text"]), f["text"])}
    if detected.shape in ("messages", "sharegpt"):
        column = f["messages"] if detected.shape == "messages" else f["conversations"]
        return lambda row: {"messages": _chat(row.get(column), column)}
    if detected.shape == "instruction":
        return lambda row: _instruction(row, f["instruction"], f.get("input"), f["output"])
    if detected.shape == "prompt_completion":
        if detected.conversational:
            return lambda row: _conversational_prompt_completion(row, f["prompt"], f["completion"])
        return lambda row: {
            "prompt": read_text(row.get(f["prompt"]), f["prompt"]),
            "completion": read_text(row.get(f["completion"]), f["completion"]),
        }
    raise ValueError(f"no SFT conversion for shape {detected.shape!r}")


def _instruction(row: Row, instruction: str, input_: str | None, output: str) -> dict[str, Any]:
    prompt = read_text(row.get(instruction), instruction)
    extra = row.get(input_) if input_ is not None else None
    if extra is not None and not isinstance(extra, str):
        raise RowProblem(f"{input_} is not text")
    # Alpaca's own template puts the input after the instruction; a blank line keeps them apart.
    if extra and extra.strip():
        prompt = f"{prompt}\n\n{extra}"
    answer = read_text(row.get(output), output)
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]}


def _chat(value: Any, column: str) -> list[Turn]:
    turns = read_turns(value, column)
    if not any(t["role"] == "assistant" for t in turns):
        raise RowProblem("no assistant turn")
    return turns


def _conversational_prompt_completion(row: Row, prompt: str, completion: str) -> dict[str, Any]:
    prompt_turns = read_turns(row.get(prompt), prompt)
    completion_turns = read_turns(row.get(completion), completion)
    if not any(t["role"] == "assistant" for t in completion_turns):
        raise RowProblem(f"no assistant turn in {completion}")
    return {"prompt": prompt_turns, "completion": completion_turns}
