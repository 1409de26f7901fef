"""Preference rows for reward modelling, DPO and KTO, in TRL's preference and unpaired formats.

TRL (1.16) takes pairs in two forms, each as strings or as chat turns:

- explicit prompt: {"prompt", "chosen", "rejected"}; as turns, the prompt is the conversation so far
  (system turns kept) and chosen/rejected are the answers (assistant turns);
- implicit prompt: {"chosen", "rejected"}, each a whole conversation (or text) that starts with the
  same prompt.

RewardTrainer scores prompt + answer as one sequence, so implicit pairs train as they are
(trl_format "preference_implicit"). DPOTrainer needs the prompt apart; it would extract it itself
(trl.data_utils.extract_prompt), but that splits text in the middle of a word and breaks on pairs
that share nothing, so smoltrain extracts it here: the shared leading turns, or for text the shared
start cut back to a word boundary (the answers then start with the space, as TRL expects). A pair
with no shared prompt cannot train DPO and is dropped.

KTO takes unpaired rows {"prompt", "completion", "label"} (strings or turns; label a boolean, true for a
desirable answer). A label that is missing or not a boolean stops the run, naming the row and the key
(RowInvalid): guessing one would train the model the wrong way. Pairs given to KTO are converted as
for DPO and then unpaired, as TRL's unpair_preference_dataset does: each pair becomes its chosen answer
(desirable) and its rejected answer (undesirable), and the data report says so.

Anthropic HH-style text ("\n\nHuman: ...\n\nAssistant: ...") is read as chat turns, so the model's
own chat template applies instead of the Human:/Assistant: markers.

Pure Python (no datasets, torch or textual; importing trl would import torch).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from smoltrain.engine.data.convert import (
    Converter,
    Row,
    RowInvalid,
    RowProblem,
    Turn,
    check_answer,
    check_prompt,
    read_text,
    read_text_or_turns,
    read_turns,
)
from smoltrain.engine.data.detect import Detected

Side = str | list[Turn]

_HH_MARKER = re.compile(r"(?:^|\n\n)(Human|Assistant): ?")
_WHITESPACE = re.compile(r"\s")


def preference_converter(detected: Detected) -> Converter:
    """The function that turns one preference row of `detected` into TRL's format, or raises RowProblem."""
    f = detected.fields
    chosen_col, rejected_col, prompt_col = f["chosen"], f["rejected"], f.get("prompt")

    def read_side(value: Any, column: str) -> Side:
        if detected.shape == "hh_rlhf":
            return _hh_turns(value, column)
        return read_text_or_turns(value, column, detected.conversational)

    keep_whole = detected.trl_format == "preference_implicit"

    def convert(row: Row) -> dict[str, Any]:
        chosen = read_side(row.get(chosen_col), chosen_col)
        rejected = read_side(row.get(rejected_col), rejected_col)
        if chosen == rejected:
            raise RowProblem(f"{chosen_col} and {rejected_col} are identical")
        if prompt_col is not None:
            prompt = read_text_or_turns(row.get(prompt_col), prompt_col, detected.conversational)
            chosen, rejected = _without_prompt(prompt, chosen), _without_prompt(prompt, rejected)
        elif keep_whole:
            check_answer(chosen, chosen_col)
            check_answer(rejected, rejected_col)
            return {"chosen": chosen, "rejected": rejected}
        else:
            split = split_prompt(chosen, rejected)
            if split is None:
                raise RowProblem(f"no prompt shared by {chosen_col} and {rejected_col}")
            prompt, chosen, rejected = split
        check_prompt(prompt, prompt_col or "prompt")
        for side, column in ((chosen, chosen_col), (rejected, rejected_col)):
            if not side:
                raise RowProblem(f"nothing in {column} after the prompt")
            check_answer(side, column)
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}

    return convert


def unpaired_converter(detected: Detected) -> Converter:
    """KTO rows: {"prompt", "completion", "label"} as they are (label checked), or pairs converted as for
    DPO ({"prompt", "chosen", "rejected"}), which `unpair` then splits."""
    if "chosen" in detected.fields:
        return preference_converter(replace(detected, trl_format="preference"))
    f = detected.fields
    prompt_col, completion_col, label_col = f["prompt"], f["completion"], f.get("label", "label")

    def convert(row: Row) -> dict[str, Any]:
        label = _label(row, label_col)
        prompt = read_text_or_turns(row.get(prompt_col), prompt_col, detected.conversational)
        completion = read_text_or_turns(row.get(completion_col), completion_col, detected.conversational)
        check_prompt(prompt, prompt_col)
        check_answer(completion, completion_col)
        return {"prompt": prompt, "completion": completion, "label": label}

    return convert


def unpair(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each pair as two KTO rows: its chosen answer desirable, its rejected one not."""
    return [
        {"prompt": pair["prompt"], "completion": pair[side], "label": side == "chosen"}
        for pair in pairs
        for side in ("chosen", "rejected")
    ]


def _label(row: Row, column: str) -> bool:
    value = row.get(column)
    hint = f"give every row {column} = true (a desirable answer) or false (an undesirable one), as JSON booleans"
    if value is None:
        raise RowInvalid(f"no {column!r} key: kto needs every answer labelled desirable or not", hint)
    if not isinstance(value, bool):
        raise RowInvalid(f"{column!r} is {value!r}, not true or false", hint)
    return value


def split_prompt(chosen: Side, rejected: Side) -> tuple[Side, Side, Side] | None:
    """(prompt, chosen answer, rejected answer) from two whole conversations that start alike; None if they do not."""
    n = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        n += 1
    if isinstance(chosen, str):
        # Back to the last whitespace: "...The answer is 12" / "...15" -> prompt "...The answer is", " 12" / " 15".
        n = max((m.start() for m in _WHITESPACE.finditer(chosen, 0, n)), default=0)
        n = n if chosen[:n].strip() else 0
    if n == 0:
        return None
    return chosen[:n], chosen[n:], rejected[n:]


def _without_prompt(prompt: Side, side: Side) -> Side:
    """Some datasets repeat the prompt turns at the start of chosen and rejected: drop them there."""
    if isinstance(prompt, list) and isinstance(side, list) and len(side) > len(prompt) and side[: len(prompt)] == prompt:
        return side[len(prompt) :]
    return side


def _hh_turns(value: Any, column: str) -> list[Turn]:
    """'\\n\\nHuman: Hi\\n\\nAssistant: Hello' -> [{user: Hi}, {assistant: Hello}]."""
    parts = _HH_MARKER.split(read_text(value, column))
    if parts[0].strip() or len(parts) < 3:
        raise RowProblem(f"{column} is not in Human:/Assistant: turns")
    turns = [{"role": "user" if who == "Human" else "assistant", "content": text} for who, text in zip(parts[1::2], parts[2::2])]
    return read_turns(turns, column)
