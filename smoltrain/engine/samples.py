"""Before and after: what a policy stage changed, in answers a user can read.

At the end of each SFT, DPO and GRPO stage, the first `train.compare_prompts` held-out prompts (the
eval split's, or the training data's when there is none) are answered greedily by the stage's
starting model (the trained model with its adapters switched off: the same weights, no second copy)
and by the trained one. The pairs go to `samples/<stage>.json` and out as `sample` events labelled
"before" and "after"; the headless printer shows two, the app's Result tab all of them side by side.

Runs in the worker. Imports torch (through generate.py); never textual.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from smoltrain.engine.data import PreparedData
from smoltrain.engine.events import Emit, Sample
from smoltrain.engine.generate import GenerationSettings, Prompt, generate

Row = dict[str, Any]


@dataclass(frozen=True)
class BeforeAfter:
    prompt: str  # the last user turn, as shown
    before: str
    after: str


def held_out_prompts(data: PreparedData, count: int) -> list[Prompt]:
    """The first `count` prompts of the eval rows (else the training rows), as the model is asked them."""
    rows = data.eval if data.eval is not None and len(data.eval) else data.train
    prompts: list[Prompt] = []
    for row in rows.select(range(min(len(rows), count * 3))):  # a few rows may have no prompt to ask
        if (prompt := _prompt_of(row, data.trl_format)) is not None:
            prompts.append(prompt)
        if len(prompts) == count:
            break
    return prompts


def _prompt_of(row: Row, trl_format: str) -> Prompt | None:
    if trl_format == "messages":
        turns = list(row["messages"])
        last_answer = max((i for i, t in enumerate(turns) if t["role"] == "assistant"), default=None)
        prompt = turns[:last_answer] if last_answer is not None else turns
        return prompt if any(t["role"] == "user" for t in prompt) else None
    if trl_format in ("prompt_completion", "preference", "prompt_only"):
        return row["prompt"]
    return None  # plain text (and implicit pairs) have no prompt to ask


def shown(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt.strip()
    users = [t["content"] for t in prompt if t["role"] == "user"]
    return users[-1].strip() if users else ""


def before_and_after(model: Any, tokenizer: Any, prompts: list[Prompt], max_new_tokens: int) -> list[BeforeAfter]:
    """Greedy answers of the starting model (adapters off) and of the trained one."""
    settings = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0)
    pairs = []
    for prompt in prompts:
        with model.disable_adapter():
            before = generate(model, tokenizer, prompt, settings)
        after = generate(model, tokenizer, prompt, settings)
        pairs.append(BeforeAfter(prompt=shown(prompt), before=before, after=after))
    return pairs


def record(pairs: list[BeforeAfter], path: Path, emit: Emit, *, stage: int, step: int) -> None:
    """samples/<stage>.json, and the pairs as sample events."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([asdict(p) for p in pairs], ensure_ascii=False, indent=1), encoding="utf-8")
    for pair in pairs:
        emit(Sample(step=step, stage=stage, prompt=pair.prompt, completion=pair.before, label="before"))
        emit(Sample(step=step, stage=stage, prompt=pair.prompt, completion=pair.after, label="after"))
