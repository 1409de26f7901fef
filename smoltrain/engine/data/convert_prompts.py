"""Prompt rows for GRPO, in TRL's prompt-only format: {"prompt", ...every other column}.

GRPOTrainer samples completions for each prompt (a string, or chat turns ending with the user's)
and passes every other column of the row to the reward functions by name: a GSM8K "answer" column
reaches `math_answer` as `answer=[...]`. So prompt-only rows keep their other columns unchanged.

SFT data works too, as prompts with a reference answer: a chat's last turn must be the assistant's,
and it becomes the "answer" column (the turns before it are the prompt); a prompt-completion row's
completion, and an Alpaca row's output, likewise. A real "answer" column, where the source has one,
wins over the one derived. (A column named "completion" would not reach the reward functions at
all: TRL keeps that name for the sampled completions.)

Pure Python (no datasets, torch or textual).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from smoltrain.engine.data.convert import (
    Converter,
    Row,
    RowProblem,
    Turn,
    check_answer,
    check_prompt,
    read_text_or_turns,
    sft_converter,
)
from smoltrain.engine.data.detect import Detected


def prompt_converter(detected: Detected) -> Converter:
    """The function that turns one row of `detected` into a GRPO prompt row, or raises RowProblem."""
    answer_col = detected.fields.get("answer")
    keep = detected.keep
    prompt_and_reference: Callable[[Row], tuple[str | list[Turn], str | None]] = (
        _prompt_only(detected) if detected.shape == "prompt_only" else _from_sft(detected)
    )

    def convert(row: Row) -> dict[str, Any]:
        prompt, reference = prompt_and_reference(row)
        out: dict[str, Any] = {"prompt": prompt}
        if answer_col is not None:
            out["answer"] = row.get(answer_col)
        elif reference is not None:
            out["answer"] = reference
        out.update((column, row.get(column)) for column in keep)
        return out

    return convert


def _prompt_only(detected: Detected) -> Callable[[Row], tuple[str | list[Turn], None]]:
    column = detected.fields["prompt"]

    def read(row: Row) -> tuple[str | list[Turn], None]:
        prompt = read_text_or_turns(row.get(column), column, detected.conversational)
        check_prompt(prompt, column)
        return prompt, None

    return read


def _from_sft(detected: Detected) -> Callable[[Row], tuple[str | list[Turn], str]]:
    """Read the row as SFT would, then split off its final answer as the reference."""
    sft = sft_converter(detected)
    f = detected.fields
    # The user's own column names, for the reasons rows are dropped.
    chat = next((f[name] for name in ("messages", "conversations") if name in f), "messages")
    prompt_col, completion_col = f.get("prompt", "prompt"), f.get("completion", "completion")

    def read(row: Row) -> tuple[str | list[Turn], str]:
        example = sft(row)
        if "messages" in example:
            turns = example["messages"]
            check_answer(turns, chat)
            prompt: str | list[Turn] = turns[:-1]
            reference = turns[-1]["content"]
        else:
            prompt, completion = example["prompt"], example["completion"]
            check_answer(completion, completion_col)
            reference = completion if isinstance(completion, str) else completion[-1]["content"]
        if not prompt:
            raise RowProblem("no prompt before the answer")
        check_prompt(prompt, prompt_col)
        return prompt, reference

    return read
