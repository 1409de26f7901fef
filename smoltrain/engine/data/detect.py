"""Which row shape a dataset has, and which of its columns play which part.

A shape is a set of column names ("prompt" + "completion", "chosen" + "rejected", ...). `data.columns`
renames the file's columns to those names first; `data.format = "auto"` then picks the first shape
the technique can train on whose columns are all present, and an explicit format only checks that
its columns exist. Shapes a technique cannot use are still recognised, so the error can say
"this looks like a preference dataset" rather than just "unknown shape".

Pure Python (no datasets, torch or textual): detection looks at column names and one row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smoltrain.errors import DataError


@dataclass(frozen=True)
class Shape:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    description: str = ""

    def needs(self) -> str:
        """The columns this shape needs, for error messages: 'instruction, output (+ optional input)'."""
        text = ", ".join(self.required)
        return text + (f" (+ optional {', '.join(self.optional)})" if self.optional else "")


# Order matters for auto-detection: the richer shape wins when a dataset has columns for several
# (a file with both "messages" and "text" is trained as a chat, which keeps the turn structure).
SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("messages", ("messages",), description="OpenAI chat: [{role, content}, ...]"),
        Shape("sharegpt", ("conversations",), description="ShareGPT: [{from, value}, ...]"),
        Shape("prompt_completion", ("prompt", "completion"), description="prompt and completion"),
        Shape("instruction", ("instruction", "output"), ("input",), description="Alpaca"),
        Shape("text", ("text",), description="plain text"),
        # Recognised so the error is helpful; techniques that train on them list them below.
        Shape("preference", ("chosen", "rejected"), ("prompt",), description="preference pairs"),
        Shape("prompt_only", ("prompt",), description="prompts only"),
    )
}

# The shapes each technique can train on, in detection order.
TECHNIQUE_SHAPES: dict[str, tuple[str, ...]] = {
    "sft": ("messages", "sharegpt", "prompt_completion", "instruction", "text"),
}

# The TRL dataset format each shape becomes (see convert.py).
TRL_FORMAT: dict[str, str] = {
    "text": "text",
    "messages": "messages",
    "sharegpt": "messages",
    "instruction": "messages",
    "prompt_completion": "prompt_completion",
}

KNOWN_NAMES = sorted({name for s in SHAPES.values() for name in s.required + s.optional})
_CHAT_COLUMNS = ("messages", "conversations")


@dataclass(frozen=True)
class Detected:
    """The shape of a dataset and, for each name the shape uses, the column that holds it."""

    shape: str
    fields: dict[str, str]  # shape's name -> the dataset's column, e.g. {"prompt": "question"}
    conversational: bool = False  # prompt/completion hold lists of turns rather than strings

    @property
    def trl_format(self) -> str:
        return TRL_FORMAT[self.shape]


def visible_columns(columns: Sequence[str], mapping: Mapping[str, str], source: str) -> dict[str, str]:
    """Apply `data.columns`: name -> dataset column, for every column the rows are seen to have."""
    for target, column in mapping.items():
        if target not in KNOWN_NAMES:
            raise DataError(
                f"data.columns: {target!r} is not a name smoltrain uses",
                hint=f"the keys of data.columns are smoltrain's names ({', '.join(KNOWN_NAMES)}); "
                'the values are your columns, e.g. {prompt = "question"}',
            )
        if column not in columns:
            raise DataError(
                f"{source}: data.columns maps {target} to column {column!r}, which is not there "
                f"(columns found: {', '.join(columns) or 'none'})",
                hint="check the spelling in data.columns; names are case-sensitive",
            )
    renamed = set(mapping.values())
    # A renamed column is gone under its old name, as with Dataset.rename_columns.
    names = {c: c for c in columns if c not in renamed}
    names.update(mapping)
    return names


def detect(
    columns: Sequence[str],
    first_row: Mapping[str, Any] | None,
    *,
    technique: str,
    fmt: str,
    mapping: Mapping[str, str],
    source: str,
) -> Detected:
    """The shape to train on: `fmt` (data.format) if not "auto" (its columns must exist), else the first that fits."""
    if technique not in TECHNIQUE_SHAPES:
        raise ValueError(f"no data shapes known for technique {technique!r}")
    allowed = TECHNIQUE_SHAPES[technique]
    names = visible_columns(columns, mapping, source)
    if fmt != "auto":
        if fmt not in allowed:
            raise DataError(
                f"data.format = {fmt!r} cannot be used for {technique}",
                hint=f"{technique} trains on: {', '.join(allowed)}",
            )
        shape = SHAPES[fmt]
        missing = [c for c in shape.required if c not in names]
        if missing:
            raise DataError(
                f"{source}: data.format = {fmt!r} needs columns {shape.needs()}; missing {', '.join(missing)} "
                f"(columns found: {', '.join(columns)})",
                hint=_rename_hint(shape),
            )
        return _refine(shape.name, names, first_row)
    for name in allowed:
        if all(c in names for c in SHAPES[name].required):
            return _refine(name, names, first_row)
    expected = "; ".join(f"{n} ({SHAPES[n].needs()})" for n in allowed)
    other = next((s for s in SHAPES.values() if s.name not in allowed and all(c in names for c in s.required)), None)
    if other is not None:
        raise DataError(
            f"{source}: this looks like a {other.description} dataset (columns {other.needs()}), which {technique} "
            f"cannot train on; {technique} needs one of: {expected}",
            hint="pick a technique that trains on this shape, or a dataset that has one of the shapes above",
        )
    raise DataError(
        f"{source}: no known row shape in columns {', '.join(columns) or '(none)'}; {technique} needs one of: {expected}",
        hint='rename your columns with data.columns, e.g. columns = {prompt = "question", completion = "answer"}',
    )


def _refine(shape: str, names: dict[str, str], first_row: Mapping[str, Any] | None) -> Detected:
    """Settle what column names alone cannot: turn keys of a chat, strings or turns in prompt/completion."""
    fields = {n: names[n] for n in (*SHAPES[shape].required, *SHAPES[shape].optional) if n in names}
    if shape in ("messages", "sharegpt") and first_row is not None:
        # Many ShareGPT exports call the column "messages" (and some chats call it "conversations"):
        # the first turn's keys say which it is.
        column = fields[_CHAT_COLUMNS[shape == "sharegpt"]]
        turns = first_row.get(column)
        first = turns[0] if isinstance(turns, list) and turns and isinstance(turns[0], Mapping) else {}
        if shape == "messages" and "from" in first and "role" not in first:
            return Detected("sharegpt", {"conversations": column})
        if shape == "sharegpt" and "role" in first and "from" not in first:
            return Detected("messages", {"messages": column})
    if shape == "prompt_completion" and first_row is not None:
        return Detected(shape, fields, conversational=isinstance(first_row.get(fields["prompt"]), list))
    return Detected(shape, fields)


def _rename_hint(shape: Shape) -> str:
    example = ", ".join(f'{c} = "your_{c}_column"' for c in shape.required)
    return f"rename your columns with data.columns, e.g. columns = {{{example}}}, or set data.format = \"auto\""
