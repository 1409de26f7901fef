"""Synthetic datasets of known token lengths, one JSONL file per technique, shared by every arm.

Every arm reads the same file, so the arms see the same rows in the same order. Rows are
random text made from the benchmark tokenizer's own tokens and re-measured after a decode/encode
round trip, so their lengths in tokens are what the workload asks for:

    sft     {"text"}                          at least seq_len tokens, truncated to seq_len by the trainers
    dpo     {"prompt", "chosen", "rejected"}  prompt + answer = seq_len - a small margin, both answers alike
    reward  {"prompt", "chosen", "rejected"}  as for dpo
    grpo    {"prompt"}                        prompt_len tokens; completions are generated

Plain text, not chat: a chat template would add the same tokens to every arm and says nothing
about speed. Imports transformers' tokenizer only.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TECHNIQUES = ("sft", "dpo", "reward", "grpo")
# Room for the tokens the trainers add around a pair (BOS/EOS), so a pair fits in seq_len untruncated.
PAIR_MARGIN = 8


@dataclass(frozen=True)
class Workload:
    """What one benchmark row looks like; the same for every arm of a comparison."""

    technique: str
    seq_len: int  # sft/dpo/reward: tokens per sequence (a pair's prompt + one answer)
    batch: int  # sequences per step (grpo: completions per step = num_generations)
    steps: int  # optimizer steps, the first one a warm-up that is not timed
    prompt_len: int = 0  # prompt tokens; 0: grpo 64, dpo/reward a quarter of seq_len
    num_generations: int = 8
    completion_len: int = 256

    @property
    def rows(self) -> int:
        # GRPO: one prompt per step (batch = num_generations completions of it).
        per_step = 1 if self.technique == "grpo" else self.batch
        return per_step * self.steps + 2


class TextMaker:
    """Random text that tokenizes to a chosen number of tokens."""

    def __init__(self, tokenizer_dir: Path, seed: int = 0) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
        special = set(self.tokenizer.all_special_ids)
        self.ids = [i for i in range(len(self.tokenizer)) if i not in special]
        self.rng = random.Random(seed)

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def text(self, tokens: int) -> str:
        """Exactly `tokens` tokens after the decode/encode round trip (a few draws may be needed)."""
        text = ""
        for _ in range(50):  # a cut inside a merge can re-tokenize shorter or longer: draw again
            text = self._draw(tokens)
            if self.count(text) == tokens:
                return text
        return text  # at most `tokens`; never reached with the bundled tokenizer in practice

    def _draw(self, tokens: int) -> str:
        ids: list[int] = []
        while len(ids) < tokens:  # merges in the round trip shorten a draw: draw until long enough
            drawn = [self.rng.choice(self.ids) for _ in range(tokens + 8)]
            ids += self.tokenizer(self.tokenizer.decode(drawn), add_special_tokens=False)["input_ids"]
        ids = ids[:tokens]
        text = self.tokenizer.decode(ids)
        while self.count(text) > tokens:
            ids = ids[:-1]
            text = self.tokenizer.decode(ids)
        return text


def rows_for(work: Workload, maker: TextMaker) -> list[dict[str, Any]]:
    if work.technique == "sft":
        return [{"text": maker.text(work.seq_len + 16)} for _ in range(work.rows)]
    if work.technique in ("dpo", "reward"):
        prompt = work.prompt_len or work.seq_len // 4
        answer = max(1, work.seq_len - prompt - PAIR_MARGIN)
        return [{"prompt": maker.text(prompt), "chosen": maker.text(answer), "rejected": maker.text(answer)}
                for _ in range(work.rows)]  # fmt: skip
    if work.technique == "grpo":
        return [{"prompt": maker.text(work.prompt_len or 64)} for _ in range(work.rows)]
    raise ValueError(f"unknown technique {work.technique!r}; known: {', '.join(TECHNIQUES)}")


def write_dataset(work: Workload, tokenizer_dir: Path, out_dir: Path) -> Path:
    """The workload's rows as JSONL under out_dir; the same file for every arm."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{work.technique}-{work.seq_len}-{work.prompt_len}-{work.rows}.jsonl"
    rows = rows_for(work, TextMaker(tokenizer_dir))
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path
