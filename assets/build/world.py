"""The toy world that the demo model is pretrained on and the demo datasets are drawn from.

Two kinds of knowledge, both small enough for a ~2M-parameter model to learn in minutes on a CPU:
  - arithmetic on small integers ("7 + 5 = 12", "9 - 4 = 5", "3 * 6 = 18"), a common part that the
    base model learns well and a rare part (larger numbers) that it learns only in part;
  - facts about twelve invented creatures (where each lives, its colour, its food, its friend).

Everything here is pure Python and seeded: the same seed gives the same world, corpus and questions.
Other build scripts import this module; run it directly to print a few samples:

    python assets/build/world.py
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

SEED = 1234

CREATURES = ["zorb", "flim", "quax", "blip", "drell", "murk", "twee", "snod", "glim", "pell", "vorn", "kib"]
PLACES = ["forest", "river", "cave", "hill", "meadow", "desert", "swamp", "castle", "lake", "valley"]
COLORS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black", "gray", "pink"]
FOODS = ["berries", "fish", "moss", "honey", "seeds", "bread", "mushrooms", "apples", "nuts", "leaves"]

Attribute = Literal["home", "color", "food", "friend"]

# How a fact is stated, in the corpus and in assistant answers alike: the base model learns these
# sentences during pretraining, and SFT only has to teach it to say them in a chat.
STATEMENTS: dict[Attribute, str] = {
    "home": "The {c} lives in the {v}.",
    "color": "The {c} is {v}.",
    "food": "The {c} eats {v}.",
    "friend": "The {c}'s friend is the {v}.",
}
QUESTIONS: dict[Attribute, tuple[str, ...]] = {
    "home": ("Where does the {c} live?", "Where is the home of the {c}?", "Which place does the {c} live in?"),
    "color": ("What color is the {c}?", "Which color is the {c}?", "Tell me the color of the {c}."),
    "food": ("What does the {c} eat?", "What food does the {c} like?", "Tell me what the {c} eats."),
    "friend": ("Who is the {c}'s friend?", "Who is the best friend of the {c}?", "Name the friend of the {c}."),
}

Op = Literal["+", "-", "*"]
OP_WORDS: dict[Op, str] = {"+": "plus", "-": "minus", "*": "times"}
# The arithmetic table: operands up to 12 for sums and differences, up to 10 for products (381
# problems) are common; up to 20 and 12 (460 more) are rare, drawn HARD_RATE of the time, so the
# base model knows those only in part. GRPO prompts mix both, so rewards within a group vary.
MAX_ADD, MAX_MUL = 12, 10
HARD_MAX_ADD, HARD_MAX_MUL = 20, 12
HARD_RATE = 0.15
ARITH_QUESTIONS: tuple[str, ...] = (
    "What is {a} {op} {b}?",
    "Compute {a} {op} {b}.",
    "Calculate {a} {op} {b}.",
    "What is {a} {word} {b}?",
    "How much is {a} {word} {b}?",
    "{a} {op} {b} = ?",
)

SYSTEM_PROMPTS: tuple[str, ...] = (
    "You are a helpful assistant.",
    "You are a helpful assistant who knows the creatures of Glimmerdale.",
    "Answer briefly and correctly.",
    "You are a friendly tutor. For sums, show the equation and then the answer after ####.",
)
# The pretraining corpus: kinds of plain-text document and their shares. Questions with answers,
# dialogue transcripts and worked solutions ending "#### 12" are text any web corpus holds; what the
# base model never sees is the chat template, so SFT still has to teach the chat format.
CORPUS_MIX: dict[str, float] = {
    "profile": 0.2,  # all four facts about one creature
    "facts": 0.1,  # a few facts about several
    "quiz": 0.125,  # questions, each followed by its answer
    "transcript": 0.125,  # "User: ...\nAssistant: ..."
    "solutions": 0.1,  # "Problem: ...\nSolution: 7 + 5 = 12.\n#### 12"
    "equations": 0.35,  # "7 + 5 = 12." lines
}
MATH_SYSTEM_PROMPT = "Solve the problem. Show the equation, then give the final answer after ####."


@dataclass(frozen=True)
class Problem:
    """One arithmetic fact, e.g. 7 + 5 = 12."""

    a: int
    op: Op
    b: int

    @property
    def result(self) -> int:
        if self.op == "+":
            return self.a + self.b
        if self.op == "-":
            return self.a - self.b
        return self.a * self.b

    def equation(self, result: int | None = None) -> str:
        """'7 + 5 = 12'; pass `result` to state a (possibly wrong) result instead of the true one."""
        return f"{self.a} {self.op} {self.b} = {self.result if result is None else result}"

    def statement(self, result: int | None = None) -> str:
        """'7 + 5 = 12.' (the same method name as Fact's, so either can answer a question)."""
        return f"{self.equation(result)}."

    def question(self, rng: random.Random) -> str:
        template = rng.choice(ARITH_QUESTIONS)
        return template.format(a=self.a, op=self.op, b=self.b, word=OP_WORDS[self.op])

    def answer(self, result: int | None = None, tail: bool = True) -> str:
        """The house style: the equation, then the bare number after '####' (what GRPO rewards parse);
        without the tail, the equation alone."""
        value = self.result if result is None else result
        return f"{self.statement(value)}\n#### {value}" if tail else self.statement(value)

    def slip(self, rng: random.Random) -> int:
        """A plausible wrong result: off by one, two or ten for sums and differences, a neighbouring
        times-table entry for products; always a number the table itself produces."""
        a, b, r = self.a, self.b, self.result
        additive = [r + d for d in (-2, -1, 1, 2, -10, 10)]
        slips = [a * (b - 1), a * (b + 1), (a - 1) * b, (a + 1) * b] if self.op == "*" else additive
        wrong = [x for x in slips if x != r and x in TABLE_RESULTS] or [x for x in additive if x in TABLE_RESULTS]
        return rng.choice(sorted(set(wrong)))


def arithmetic_table(max_add: int, max_mul: int) -> list[Problem]:
    """Sums and (non-negative) differences with operands up to max_add, products up to max_mul."""
    adds = [Problem(a, "+", b) for a in range(max_add + 1) for b in range(max_add + 1)]
    subs = [Problem(a, "-", b) for a in range(max_add + 1) for b in range(a + 1)]
    muls = [Problem(a, "*", b) for a in range(max_mul + 1) for b in range(max_mul + 1)]
    return adds + subs + muls


TABLE_RESULTS = frozenset(p.result for p in arithmetic_table(HARD_MAX_ADD, HARD_MAX_MUL))


@dataclass(frozen=True)
class Fact:
    """One attribute of one creature, e.g. the zorb lives in the forest."""

    creature: str
    attribute: Attribute
    value: str

    def statement(self, value: str | None = None) -> str:
        return STATEMENTS[self.attribute].format(c=self.creature, v=self.value if value is None else value)

    def answer(self, value: str | None = None, tail: bool = True) -> str:
        """The house style for facts is the plain statement (`tail` is for arithmetic only)."""
        return self.statement(value)

    def question(self, rng: random.Random) -> str:
        return rng.choice(QUESTIONS[self.attribute]).format(c=self.creature)


class World:
    """The creatures' facts (fixed by the seed) and seeded samplers of facts and problems."""

    def __init__(self, seed: int = SEED) -> None:
        rng = random.Random(seed)
        friends = CREATURES[:]
        # A derangement, so no creature is its own friend.
        while any(a == b for a, b in zip(CREATURES, friends)):
            rng.shuffle(friends)
        self.facts: list[Fact] = []
        for creature, friend in zip(CREATURES, friends):
            self.facts += [
                Fact(creature, "home", rng.choice(PLACES)),
                Fact(creature, "color", rng.choice(COLORS)),
                Fact(creature, "food", rng.choice(FOODS)),
                Fact(creature, "friend", friend),
            ]
        self.problems: list[Problem] = arithmetic_table(MAX_ADD, MAX_MUL)
        common = set(self.problems)
        self.hard_problems = [p for p in arithmetic_table(HARD_MAX_ADD, HARD_MAX_MUL) if p not in common]

    def problem(self, rng: random.Random, hard_rate: float = HARD_RATE) -> Problem:
        """A random problem: a rare (hard) one with probability hard_rate, else a common one."""
        return rng.choice(self.hard_problems if rng.random() < hard_rate else self.problems)

    def item(self, rng: random.Random, fact_rate: float = 0.4) -> Fact | Problem:
        """A random fact (with probability fact_rate) or arithmetic problem."""
        return rng.choice(self.facts) if rng.random() < fact_rate else self.problem(rng)

    def reply(self, item: Fact | Problem, rng: random.Random, correct: bool = True, tail: bool = True) -> str:
        """The assistant's answer in the house style (`tail`: end a sum with its '#### n' line). A wrong
        one is the same sentence with a slipped result or another creature's value of the same
        attribute: words this world uses, as familiar to the model as the right ones, so only knowing
        the world tells them apart."""
        if correct:
            return item.answer(tail=tail)
        if isinstance(item, Problem):
            return item.answer(item.slip(rng), tail=tail)
        used = sorted({f.value for f in self.facts if f.attribute == item.attribute})
        return item.answer(rng.choice([v for v in used if v not in (item.value, item.creature)]))

    def off_topic_reply(self, item: Fact | Problem, rng: random.Random, tail: bool = True) -> str:
        """A true statement on the other subject (a creature's fact for a sum, a sum for a question
        about a creature): fluent, in the house style, and no answer at all."""
        other = rng.choice(self.facts) if isinstance(item, Problem) else self.problem(rng)
        return other.answer(tail=tail)

    def facts_about(self, creature: str) -> list[Fact]:
        return [f for f in self.facts if f.creature == creature]

    def corpus_document(self, rng: random.Random) -> str:
        """One plain-text pretraining document (no chat markup), of a kind drawn by CORPUS_MIX."""
        writers = {
            "profile": self._doc_profile,
            "facts": self._doc_facts,
            "quiz": self._doc_quiz,
            "transcript": self._doc_transcript,
            "solutions": self._doc_solutions,
            "equations": self._doc_equations,
        }
        kinds = list(CORPUS_MIX)
        kind = rng.choices(kinds, weights=[CORPUS_MIX[k] for k in kinds])[0]
        return writers[kind](rng)

    def _doc_profile(self, rng: random.Random) -> str:
        facts = self.facts_about(rng.choice(CREATURES))
        rng.shuffle(facts)
        return " ".join(f.statement() for f in facts)

    def _doc_facts(self, rng: random.Random) -> str:
        return " ".join(f.statement() for f in rng.sample(self.facts, rng.randint(3, 6)))

    def _doc_quiz(self, rng: random.Random) -> str:
        # Each answer on its own line, as an assistant reply starts after the chat header.
        return "\n".join(f"{i.question(rng)}\n{i.statement()}" for i in self._items(rng))

    def _doc_transcript(self, rng: random.Random) -> str:
        return "\n".join(f"User: {i.question(rng)}\nAssistant: {i.statement()}" for i in self._items(rng))

    def _doc_solutions(self, rng: random.Random) -> str:
        problems = [self.problem(rng) for _ in range(rng.randint(2, 4))]
        return "\n\n".join(f"Problem: {p.question(rng)}\nSolution: {p.answer()}" for p in problems)

    def _doc_equations(self, rng: random.Random) -> str:
        lines = []
        for p in (self.problem(rng) for _ in range(rng.randint(4, 10))):
            words = rng.random() < 0.2
            lines.append(f"{p.a} {OP_WORDS[p.op]} {p.b} is {p.result}." if words else p.statement())
        return "\n".join(lines)

    def _items(self, rng: random.Random) -> list[Fact | Problem]:
        return [self.item(rng) for _ in range(rng.randint(2, 5))]


if __name__ == "__main__":
    world = World()
    rng = random.Random(0)
    items: list[Fact | Problem] = [*world.facts_about("zorb"), Problem(7, "+", 5)]
    for item in items:
        print(f"{item.question(rng)!r} -> {world.reply(item, rng)!r} | wrong: {world.reply(item, rng, False)!r}")
    print("---")
    for _ in range(3):
        print(world.corpus_document(rng), end="\n---\n")
