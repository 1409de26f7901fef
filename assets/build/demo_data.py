"""Write the demo datasets (JSON lines) for SFT, reward modelling, DPO, KTO and GRPO in the toy world.

    python assets/build/demo_data.py      # a second or two; writes assets/data/*.jsonl

  sft.jsonl     {"messages": [system, user, assistant, (user, assistant)]}
  reward.jsonl  {"prompt": [system, user], "chosen": [assistant], "rejected": [assistant]}
  dpo.jsonl     the same shape as reward.jsonl, a different sample of pairs
  kto.jsonl     {"prompt": [system, user], "completion": [assistant], "label": true}  one answer per prompt,
                thumbs up (a chosen reply) or down (a rejected one), half each: unpaired, as KTO data is
  grpo.jsonl    {"prompt": [system, user], "answer": "12"}  arithmetic; completions end "#### 12"
  ../eval/math.jsonl  200 fresh arithmetic prompts of the GRPO kind, all with the math system prompt:
                the held-out questions `smoltrain eval` asks every stage (presets/demo.toml's [eval])

Assistant replies use the house style the world defines ("7 + 5 = 12.\\n#### 12", "The zorb lives in
the forest."), half the sums without their "#### 12" line. A rejected reply is unhelpful ("I don't
know."), answers another question, or is the same sentence with a wrong number or attribute, which
only knowing the world gives away (REJECTION_KINDS sets the shares).
(Not named datasets.py: this folder is first on sys.path when a script here runs, and would shadow
the `datasets` library.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from world import MATH_SYSTEM_PROMPT, SEED, SYSTEM_PROMPTS, World

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
Message = dict[str, str]
Row = dict[str, Any]

SYSTEM_RATE = 0.9  # most rows carry a system turn; a few don't, as in real data
TWO_TURN_RATE = 0.25
FACT_RATE = 0.4  # share of single questions that ask about a creature rather than arithmetic
# Like most chat data, the SFT set is inconsistent: only half of its sums end with the '#### n' line
# the math system prompt asks for. GRPO's math_answer reward needs that line, so the SFT model
# starts GRPO earning it about half the time, and GRPO has a habit to learn, as on real models.
TAIL_RATE = 0.5
# Why a rejected reply loses, as in real preference data: mostly it is unhelpful or answers another
# question; sometimes it is the same sentence with a wrong number or fact, which only knowing the
# world gives away.
REJECTION_KINDS = {"wrong": 0.2, "unhelpful": 0.4, "off_topic": 0.4}
UNHELPFUL_REPLIES = (
    "I don't know.",
    "I am not sure.",
    "Sorry, I can't help with that.",
    "That is a good question.",
    "Let me think about it.",
    "Please ask me something else.",
)
GRPO_HARD_RATE = 0.25  # a quarter of the GRPO problems use the rare, larger numbers the model half knows


def _msg(role: str, content: str) -> Message:
    return {"role": role, "content": content}


def _system(rng: random.Random) -> list[Message]:
    return [_msg("system", rng.choice(SYSTEM_PROMPTS))] if rng.random() < SYSTEM_RATE else []


def sft_rows(world: World, rng: random.Random, n: int) -> Iterable[Row]:
    for _ in range(n):
        messages = _system(rng)
        for _ in range(2 if rng.random() < TWO_TURN_RATE else 1):
            item = world.item(rng, FACT_RATE)
            reply = world.reply(item, rng, tail=rng.random() < TAIL_RATE)
            messages += [_msg("user", item.question(rng)), _msg("assistant", reply)]
        yield {"messages": messages}


def preference_rows(world: World, rng: random.Random, n: int) -> Iterable[Row]:
    kinds = list(REJECTION_KINDS)
    for _ in range(n):
        item = world.item(rng, FACT_RATE)
        # Chosen and rejected share the tail choice, so neither the reward model nor DPO learns
        # anything about the '####' line: that is left for GRPO.
        tail = rng.random() < TAIL_RATE
        kind = rng.choices(kinds, weights=[REJECTION_KINDS[k] for k in kinds])[0]
        if kind == "wrong":
            rejected = world.reply(item, rng, correct=False, tail=tail)
        elif kind == "unhelpful":
            rejected = rng.choice(UNHELPFUL_REPLIES)
        else:
            rejected = world.off_topic_reply(item, rng, tail=tail)
        yield {
            "prompt": _system(rng) + [_msg("user", item.question(rng))],
            "chosen": [_msg("assistant", world.reply(item, rng, tail=tail))],
            "rejected": [_msg("assistant", rejected)],
        }


def kto_rows(world: World, rng: random.Random, n: int) -> Iterable[Row]:
    """One side of each of n fresh pairs, at random: real thumbs-up/down feedback rates one answer a prompt."""
    for pair in preference_rows(world, rng, n):
        desirable = rng.random() < 0.5
        yield {"prompt": pair["prompt"], "completion": pair["chosen" if desirable else "rejected"], "label": desirable}


def grpo_rows(world: World, rng: random.Random, n: int) -> Iterable[Row]:
    for _ in range(n):
        problem = world.problem(rng, hard_rate=GRPO_HARD_RATE)
        system = MATH_SYSTEM_PROMPT if rng.random() < 0.5 else rng.choice(SYSTEM_PROMPTS)
        yield {
            "prompt": [_msg("system", system), _msg("user", problem.question(rng))],
            "answer": str(problem.result),
        }


def eval_rows(world: World, rng: random.Random, n: int) -> Iterable[Row]:
    """Held-out arithmetic: new rows (the world has 841 problems and the training files touch them all,
    so what is held out is the question, not the numbers), always with the math system prompt, so the
    house style's '#### n' line is asked for and math_answer can score every answer."""
    for _ in range(n):
        problem = world.problem(rng, hard_rate=GRPO_HARD_RATE)
        yield {
            "prompt": [_msg("system", MATH_SYSTEM_PROMPT), _msg("user", problem.question(rng))],
            "answer": str(problem.result),
        }


def write_jsonl(path: Path, rows: Iterable[Row]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def main() -> None:
    world = World()
    # One seeded stream per file, so changing one dataset's size leaves the others as they were.
    files = {
        "sft.jsonl": sft_rows(world, random.Random(SEED + 10), 2000),
        "reward.jsonl": preference_rows(world, random.Random(SEED + 11), 1500),
        "dpo.jsonl": preference_rows(world, random.Random(SEED + 12), 1500),
        "grpo.jsonl": grpo_rows(world, random.Random(SEED + 13), 800),
        "../eval/math.jsonl": eval_rows(world, random.Random(SEED + 14), 200),
        "kto.jsonl": kto_rows(world, random.Random(SEED + 15), 2000),
    }
    for name, rows in files.items():
        print(f"{name}: {write_jsonl(DATA_DIR / name, rows)} rows -> {DATA_DIR / name}")


if __name__ == "__main__":
    main()
