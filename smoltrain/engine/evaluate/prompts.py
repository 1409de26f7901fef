"""Prompts tasks: held-out prompts each model answers (greedily, or sampled), scored by reward functions.

The file is read like any smoltrain data (engine/data/load.py: local files or a hub dataset). A row
asks its `prompt` (text or chat turns) or its `messages` (up to the last assistant turn, which is
dropped: the answer is the model's to give); the task's system_prompt is added to rows without a
system turn. Answers are generated in batches (engine/generate.py): greedy by default, the same answers
every time; or `samples` answers per prompt at a `temperature` from a fixed seed, a prompt's score then
being the mean of its answers' (the policy's own success rate, as training samples it). Each reward function of the task scores them exactly as GRPO would have during training
(engine/techniques/rewards.py, called with the row's other columns): so "math_answer 0.88" here and
the GRPO stage's training reward measure the same thing, here on prompts it never trained on.

Runs in the CLI's process or the worker. Imports torch; never textual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoltrain.config.schema import EvalTask, RewardFunction
from smoltrain.engine.data.load import load_split
from smoltrain.engine.generate import Prompt, generate_batch
from smoltrain.engine.samples import shown
from smoltrain.errors import DataError

Row = dict[str, Any]


@dataclass(frozen=True)
class PromptSet:
    prompts: list[Prompt]
    columns: dict[str, list[Any]]  # every other column, one value per prompt: what rewards read
    source: str

    @property
    def questions(self) -> list[str]:
        return [shown(p) for p in self.prompts]


def load_prompts(spec: EvalTask, limit: int | None, where: str) -> PromptSet:
    """The task's prompts (the first `limit`), each with its other columns."""
    data = load_split(str(spec.prompts), None, spec.split, max_rows=limit)
    prompts: list[Prompt] = []
    columns: dict[str, list[Any]] = {c: [] for c in data.columns if c not in ("prompt", "messages")}
    for i, row in enumerate(data.rows):
        prompt = _prompt_of(dict(row), spec.system_prompt)
        if prompt is None:
            raise DataError(f"{where}.prompts: {data.source} {data.where(i)} has no prompt to ask (a prompt, or messages "
                            "with a user turn)", hint="prompts tasks read rows like {\"prompt\": ..., \"answer\": ...}")  # fmt: skip
        prompts.append(prompt)
        for column in columns:
            columns[column].append(row.get(column))
    return PromptSet(prompts, columns, data.source)


def _prompt_of(row: Row, system: str | None) -> Prompt | None:
    if isinstance(row.get("prompt"), str) and row["prompt"].strip():
        turns: list[dict[str, str]] = [{"role": "user", "content": row["prompt"]}]
    elif isinstance(row.get("prompt"), list):
        turns = [dict(t) for t in row["prompt"]]
    elif isinstance(row.get("messages"), list):
        turns = [dict(t) for t in row["messages"]]
        last = max((i for i, t in enumerate(turns) if t.get("role") == "assistant"), default=None)
        turns = turns[:last] if last is not None and last == len(turns) - 1 else turns
    else:
        return None
    if not any(t.get("role") == "user" for t in turns):
        return None
    if system and not any(t.get("role") == "system" for t in turns):
        turns = [{"role": "system", "content": system}, *turns]
    return turns


def answer(model: Any, tokenizer: Any, prompts: PromptSet, *, max_new_tokens: int, batch_size: int, where: str,
           samples: int = 1, temperature: float = 0.0) -> list[list[str]]:  # fmt: skip
    """Each prompt's `samples` answers (greedy at temperature 0; sampled from a fixed seed otherwise, so a
    rerun gives the same ones); a prompt the model's chat template refuses (even with its system turn
    folded in) is a user error naming the file."""
    from smoltrain.engine.data.convert import RowRejected

    asked = [p for p in prompts.prompts for _ in range(samples)]
    try:
        flat = generate_batch(model, tokenizer, asked, max_new_tokens, batch_size=batch_size, temperature=temperature)
    except RowRejected as exc:
        raise DataError(f"{where}.prompts: {prompts.source}: the model's chat template refuses a prompt ({exc})",
                        hint="check the turns' order and roles against the template (smoltrain data shows what it takes)") from None  # fmt: skip
    return [flat[i : i + samples] for i in range(0, len(flat), samples)]


def score(specs: Sequence[RewardFunction], prompts: PromptSet, answers: list[list[str]], *,
          resolve_model: Callable[[str], Path], device: str) -> dict[str, list[float | None]]:  # fmt: skip
    """Each reward's score of each prompt's answers, as TRL would call it: the mean over the prompt's
    samples (None where the reward does not apply to any of them)."""
    from smoltrain.engine.techniques.rewards import build_reward_functions

    rewards = build_reward_functions(specs, resolve_model=resolve_model, device=device)
    samples = len(answers[0]) if answers else 1
    completions = [[{"role": "assistant", "content": a}] for group in answers for a in group]
    repeated = [p for p in prompts.prompts for _ in range(samples)]
    columns = {c: [v for v in values for _ in range(samples)] for c, values in prompts.columns.items()}
    out: dict[str, list[float | None]] = {}
    for name, fn in zip(rewards.names, rewards.functions):
        values = fn(prompts=repeated, completions=completions, **columns)
        out[name] = [_mean(values[i : i + samples]) for i in range(0, len(values), samples)]
    return out


def _mean(values: Sequence[float | None]) -> float | None:
    scored = [float(v) for v in values if v is not None]
    return sum(scored) / len(scored) if scored else None
