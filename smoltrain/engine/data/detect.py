"""Which row shape a dataset has, which of its columns play which part, and what it becomes for TRL.

A shape is a set of column names ("prompt" + "completion", "chosen" + "rejected", ...). `data.columns`
renames the file's columns to those names first; `data.format = "auto"` then picks the first shape
the technique can train on whose columns are all present, and an explicit format only checks that
its columns exist. Shapes a technique cannot use are still recognised, so the error can say
"this looks like chat (SFT) data" rather than just "unknown shape".

What a shape becomes depends on the technique (TRL_FORMAT): SFT takes text, chats or prompt and
completion; reward and DPO take preference pairs; KTO takes labelled answers, or pairs that it unpairs;
GRPO takes prompts, and can draw them (and a reference "answer") from SFT data too.

Pure Python (no datasets, torch or textual): detection looks at column names and one row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from smoltrain.config.techniques import facts
from smoltrain.errors import DataError


@dataclass(frozen=True)
class Shape:
    name: str
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    description: str = ""  # completes "this looks like ..."

    def needs(self) -> str:
        """The columns this shape needs, for error messages: 'instruction, output (+ optional input)'."""
        text = ", ".join(self.required)
        return text + (f" (+ optional {', '.join(self.optional)})" if self.optional else "")


# Order matters for auto-detection and for naming what a dataset looks like: the richer shape wins
# when a dataset has columns for several (a file with both "messages" and "text" is trained as a
# chat, which keeps the turn structure; "prompt, chosen, rejected" is a preference pair, not prompts).
SHAPES: dict[str, Shape] = {
    s.name: s
    for s in (
        Shape("messages", ("messages",), (), "chat (SFT) data"),
        Shape("sharegpt", ("conversations",), (), "ShareGPT chat (SFT) data"),
        Shape("unpaired", ("prompt", "completion", "label"), (), "answers labelled desirable or not (KTO data)"),
        Shape("prompt_completion", ("prompt", "completion"), (), "prompt-completion (SFT) data"),
        Shape("instruction", ("instruction", "output"), ("input",), "Alpaca instruction (SFT) data"),
        Shape("text", ("text",), (), "plain text"),
        Shape("preference", ("prompt", "chosen", "rejected"), (), "preference pairs"),
        Shape("preference_implicit", ("chosen", "rejected"), (), "preference pairs"),
        Shape("prompt_only", ("prompt",), ("answer",), "prompts only (GRPO data)"),
        # Found by content, never by columns alone: chosen/rejected strings of "\n\nHuman: ...\n\nAssistant: ..."
        # turns, as in Anthropic's HH-RLHF. They are read as chats (see convert_preference.py).
        Shape("hh_rlhf", ("chosen", "rejected"), (), "Anthropic HH preference pairs"),
    )
}

# The shapes each technique can train on, in detection order. GRPO reads SFT data as prompts and
# answers; prompt_completion comes before prompt_only so that a completion becomes the "answer".
TECHNIQUE_SHAPES: dict[str, tuple[str, ...]] = {
    "sft": ("messages", "sharegpt", "prompt_completion", "instruction", "text"),
    "reward": ("preference", "preference_implicit"),
    "dpo": ("preference", "preference_implicit"),
    # prompt_completion without a label column is taken too, so that the error names the first row and
    # the missing key (convert_preference.unpaired_converter) instead of only listing shapes.
    "kto": ("unpaired", "prompt_completion", "preference", "preference_implicit"),
    "grpo": ("prompt_completion", "prompt_only", "messages", "sharegpt", "instruction"),
}
TECHNIQUE_SHAPES["curate"] = TECHNIQUE_SHAPES["grpo"]  # prompts to sample answers for, with the columns rewards read
TECHNIQUE_SHAPES["distill"] = TECHNIQUE_SHAPES["grpo"]  # prompts the student answers and the teacher scores
TECHNIQUE_SHAPES["rloo"] = TECHNIQUE_SHAPES["grpo"]  # prompts to sample groups for, with the columns rewards read

# What a technique needs, in words, for "dpo needs preference pairs, as one of: ...".
TECHNIQUE_NEEDS: dict[str, str] = {
    "sft": "examples to imitate",
    "reward": "preference pairs",
    "dpo": "preference pairs",
    "kto": "answers labelled desirable or not (or preference pairs)",
    "grpo": "prompts",
    "curate": "prompts",
    "distill": "prompts",
    "rloo": "prompts",
}

_MAPPING_EXAMPLE: dict[str, str] = {
    "sft": 'prompt = "question", completion = "answer"',
    "reward": 'prompt = "question", chosen = "good", rejected = "bad"',
    "dpo": 'prompt = "question", chosen = "good", rejected = "bad"',
    "kto": 'prompt = "question", completion = "answer", label = "thumbs_up"',
    "grpo": 'prompt = "question"',
    "curate": 'prompt = "question"',
    "distill": 'prompt = "question"',
    "rloo": 'prompt = "question"',
}

_PREFERENCE = ("preference", "preference_implicit", "hh_rlhf")
# The TRL dataset format each (technique, shape) becomes; the converters live in convert*.py.
# RewardTrainer scores prompt + answer as one sequence, so pairs without a separate prompt train
# as they are; DPOTrainer needs the prompt apart, so smoltrain extracts it (convert_preference.py).
TRL_FORMAT: dict[str, dict[str, str]] = {
    "sft": {
        "text": "text",
        "messages": "messages",
        "sharegpt": "messages",
        "instruction": "messages",
        "prompt_completion": "prompt_completion",
    },
    "reward": {"preference": "preference", "preference_implicit": "preference_implicit", "hh_rlhf": "preference_implicit"},
    "dpo": dict.fromkeys(_PREFERENCE, "preference"),
    # KTOTrainer takes unpaired rows; pairs are unpaired by smoltrain (chosen: desirable, rejected: not).
    "kto": dict.fromkeys(("unpaired", "prompt_completion", *_PREFERENCE), "unpaired"),
    "grpo": dict.fromkeys(TECHNIQUE_SHAPES["grpo"], "prompt_only"),
    "curate": dict.fromkeys(TECHNIQUE_SHAPES["curate"], "prompt_only"),
    "distill": dict.fromkeys(TECHNIQUE_SHAPES["distill"], "prompt_only"),
    "rloo": dict.fromkeys(TECHNIQUE_SHAPES["rloo"], "prompt_only"),
}

# Names a GRPO row gets whatever its source; a passed-through column may not take them.
PROMPT_ONLY_COLUMNS = ("prompt", "answer")

KNOWN_NAMES = sorted({name for s in SHAPES.values() for name in s.required + s.optional})
_CHAT_COLUMNS = ("messages", "conversations")
_HH_START = re.compile(r"^(\n\n)?Human: ")


@dataclass(frozen=True)
class Detected:
    """The shape of a dataset and, for each name the shape uses, the column that holds it."""

    shape: str
    fields: dict[str, str]  # shape's name -> the dataset's column, e.g. {"prompt": "question"}
    trl_format: str  # what the rows become: text, messages, prompt_completion, preference, ...
    conversational: bool = False  # prompt/completion/chosen... hold lists of turns rather than strings
    keep: tuple[str, ...] = ()  # dataset columns passed on unchanged (GRPO: reward functions read them)


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
        return _detected(shape.name, names, first_row, technique, columns)
    for name in allowed:
        if all(c in names for c in SHAPES[name].required):
            return _detected(name, names, first_row, technique, columns)
    raise _wrong_shape(columns, names, technique, source)


def _wrong_shape(columns: Sequence[str], names: Mapping[str, str], technique: str, source: str) -> DataError:
    """'dpo needs preference pairs, as one of: ...; found columns: messages — this looks like chat (SFT) data'."""
    allowed = TECHNIQUE_SHAPES[technique]
    expected = "; ".join(f"{n} ({SHAPES[n].needs()})" for n in allowed)
    found = ", ".join(columns) or "(none)"
    message = f"{source}: {technique} needs {TECHNIQUE_NEEDS[technique]}, as one of: {expected}; found columns: {found}"
    other = next((s for s in SHAPES.values() if s.name not in allowed and all(c in names for c in s.required)), None)
    if other is None:
        example = _MAPPING_EXAMPLE[technique]
        return DataError(message, hint=f"rename your columns with data.columns, e.g. columns = {{{example}}}")
    users = [t for t, shapes in TECHNIQUE_SHAPES.items() if other.name in shapes]
    return DataError(
        f"{message} — this looks like {other.description}",
        hint=f"{other.name} data trains with technique {' or '.join(users)}; for {technique}, use a dataset with one of "
        "the shapes above, or map your columns to them with data.columns",
    )


def _detected(
    shape: str, names: dict[str, str], first_row: Mapping[str, Any] | None, technique: str, columns: Sequence[str]
) -> Detected:
    shape, fields, conversational = _refine(shape, names, first_row or {})
    if not facts(technique).prompts_only:
        return Detected(shape, fields, TRL_FORMAT[technique][shape], conversational)
    # GRPO (and the other techniques that sample their own answers): chats become prompts of turns; an "answer" column (of any source) is the reference the
    # reward functions compare with, and every other column goes along for them unchanged.
    if "answer" in names:
        fields["answer"] = names["answer"]
    conversational = conversational or shape in ("messages", "sharegpt", "instruction")
    used = set(fields.values())
    keep = tuple(c for c in columns if c not in used and c not in PROMPT_ONLY_COLUMNS)
    return Detected(shape, fields, TRL_FORMAT[technique][shape], conversational, keep)


def _refine(shape: str, names: dict[str, str], first_row: Mapping[str, Any]) -> tuple[str, dict[str, str], bool]:
    """Settle what column names alone cannot: turn keys of a chat, strings or turns, where the prompt is."""
    fields = {n: names[n] for n in (*SHAPES[shape].required, *SHAPES[shape].optional) if n in names}
    if shape in ("messages", "sharegpt"):
        # Many ShareGPT exports call the column "messages" (and some chats call it "conversations"):
        # the first turn's keys say which it is.
        column = fields[_CHAT_COLUMNS[shape == "sharegpt"]]
        turns = first_row.get(column)
        first = turns[0] if isinstance(turns, list) and turns and isinstance(turns[0], Mapping) else {}
        if shape == "messages" and "from" in first and "role" not in first:
            fields["conversations"] = fields.pop("messages")
            return "sharegpt", fields, False
        if shape == "sharegpt" and "role" in first and "from" not in first:
            fields["messages"] = fields.pop("conversations")
            return "messages", fields, False
    if shape in ("prompt_completion", "prompt_only", "unpaired"):
        return shape, fields, isinstance(first_row.get(fields["prompt"]), list)
    if shape in ("preference", "preference_implicit"):
        chosen = first_row.get(fields["chosen"])
        if shape == "preference" and isinstance(chosen, list) and isinstance(first_row.get(fields["prompt"]), str):
            # A text prompt next to whole conversations (UltraFeedback does this) only summarises
            # them: the conversations hold the real prompt, as in TRL's maybe_extract_prompt.
            del fields["prompt"]
            return "preference_implicit", fields, True
        if shape == "preference_implicit" and isinstance(chosen, str) and _HH_START.match(chosen):
            return "hh_rlhf", fields, True
        return shape, fields, isinstance(chosen, list)
    return shape, fields, False


def _rename_hint(shape: Shape) -> str:
    example = ", ".join(f'{c} = "your_{c}_column"' for c in shape.required)
    return f"rename your columns with data.columns, e.g. columns = {{{example}}}, or set data.format = \"auto\""
