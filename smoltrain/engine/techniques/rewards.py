"""GRPO and RLOO reward functions: [[grpo.rewards]] / [[rloo.rewards]] specs -> callables in the shape
TRL's GRPOTrainer and RLOOTrainer call (the same for both).

TRL 1.16 calls every reward function as `f(prompts=..., completions=..., completion_ids=..., **kw)`,
where `kw` holds each extra dataset column (one value per completion) plus `trainer_state`,
`log_extra` and `log_metric`. Prompts and completions are strings for standard data and message
lists for conversational data (a completion is then `[{"role": "assistant", "content": ...}]`).
A function returns one float per completion, or None where it does not apply; TRL logs its mean
as `rewards/<__name__>/mean` and sums the functions with `reward_weights` (None counting as 0).

`build_reward_functions` turns the specs into a `RewardSet`: the callables, their weights and names,
and a record of the latest scored batch so the engine can show the best and worst completion. A
reward that scores no completion of a batch is warned about, and stops the run (exit 2) after
SILENT_BATCHES_TO_STOP batches in a row: TRL would count it as 0 and train on nothing, silently.
The verifiable rewards live here; those read from files the user points at (their own Python
function, a trained reward model) in external_rewards.py.

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrain.config.schema import RewardFunction
from smoltrain.engine.events import Emit, Warning
from smoltrain.errors import ConfigError, SmoltrainError

Scores = list[float | None]
SILENT_BATCHES_TO_STOP = 3  # generation batches in a row in which a reward scored nothing
RewardCallable = Callable[..., Scores]

# What TRL adds to every call besides the dataset columns; hidden when we list the columns to the user.
TRL_KWARGS = frozenset({"trainer_state", "log_extra", "log_metric", "environments"})


class RewardFunctionError(SmoltrainError):
    """A reward function failed while scoring: the user's function misbehaved or a column is missing."""


@dataclass
class ScoredCompletion:
    prompt: str
    completion: str
    rewards: dict[str, float | None]
    total: float


# --------------------------------------------------------------------------- text of prompts and completions


def _content_text(content: Any) -> str:
    if content is None:  # an assistant turn that only calls tools
        return ""
    if isinstance(content, str):
        return content
    # Multimodal content blocks: keep the text parts.
    return "".join(block.get("text", "") for block in content if isinstance(block, dict))


def completion_text(completion: str | list[dict[str, Any]]) -> str:
    """The text a reward judges: the string itself, or the assistant turns of a conversational completion."""
    if isinstance(completion, str):
        return completion
    return "\n".join(_content_text(m.get("content")) for m in completion if m.get("role", "assistant") == "assistant")


def prompt_text(prompt: str | list[dict[str, Any]]) -> str:
    """The prompt as a user recognises it: the string, or the last user message of a conversation."""
    if isinstance(prompt, str):
        return prompt
    users = [m for m in prompt if m.get("role") == "user"] or list(prompt)
    return _content_text(users[-1].get("content")) if users else ""


# --------------------------------------------------------------------------- answers: extract, normalise, compare

_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+")
_FRACTION = re.compile(r"\\d?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}|(-?[\d.]+)\s*/\s*(-?[\d.]+)")


def extract_final_answer(text: str) -> str | None:
    """The answer a solution commits to: the line after the last '####', or the last \\boxed{...}.

    Whichever of the two comes last in the text wins; None when there is neither (or it is empty).
    """
    hashes = text.rfind("####")
    boxed = text.rfind("\\boxed{")
    if hashes < 0 and boxed < 0:
        return None
    if hashes > boxed:
        tail = text[hashes + 4 :].strip()
        answer = tail.splitlines()[0] if tail else ""
    else:
        answer = _braced(text, boxed + len("\\boxed{"))
    answer = answer.strip()
    return answer or None


def _braced(text: str, start: int) -> str:
    """The text from `start` up to the brace that closes the one just before it (nested braces allowed)."""
    depth = 1
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start:i]
    return ""  # an unclosed \boxed{ is a malformed answer, not an answer


def normalise(text: str) -> str:
    """Case-fold and strip what models wrap answers in: whitespace, **bold**, quotes, $...$, a final period."""
    previous = None
    text = text.strip()
    while text != previous:
        previous = text
        for pair in ("**", "__", '"', "'", "`", "$"):
            if len(text) >= 2 * len(pair) and text.startswith(pair) and text.endswith(pair):
                text = text[len(pair) : -len(pair)].strip()
        text = text.rstrip(".").strip()
    return " ".join(text.lower().split())


def as_number(text: str) -> float | None:
    """The value of an answer that is just a number: '12', '12.0', '1,200', '-3', '$5', '50%', '3/4', '\\frac{3}{4}'."""
    cleaned = normalise(text).replace("\\!", "").replace("\\,", "").removeprefix("$").removesuffix("%").strip()
    if _NUMBER.fullmatch(cleaned):
        return float(cleaned.replace(",", ""))
    fraction = _FRACTION.fullmatch(cleaned)
    if fraction:
        top, bottom = (g for g in fraction.groups() if g is not None)
        try:
            return float(top) / float(bottom)
        except (ValueError, ZeroDivisionError):
            return None
    return None


def _lone_number(text: str) -> float | None:
    """The number in an answer with exactly one ('72 dollars', 'x = 5'); None when there are none or several."""
    found = _NUMBER.findall(text)
    return float(found[0].replace(",", "")) if len(found) == 1 else None


def answers_match(predicted: str, reference: str, *, lenient_numbers: bool) -> bool:
    """Numbers compare by value, anything else as normalised text.

    `lenient_numbers` also reads an answer holding a single number ('72 dollars') as that number:
    right for math, too loose for exact_match.
    """
    values = [as_number(predicted), as_number(reference)]
    if lenient_numbers:
        values = [v if v is not None else _lone_number(t) for v, t in zip(values, (predicted, reference))]
    if values[0] is not None and values[1] is not None:
        return math.isclose(values[0], values[1], rel_tol=1e-9, abs_tol=1e-9)
    return normalise(predicted) == normalise(reference)


def _reference(value: Any) -> str | None:
    """The right answer from the dataset column; a full GSM8K-style solution is cut down to its '#### x' answer."""
    if value is None:
        return None
    text = str(value)
    return extract_final_answer(text) or text


# --------------------------------------------------------------------------- the built-in rewards


def _answer_reward(name: str, column: str, *, needs_marker: bool) -> RewardCallable:
    """exact_match and math_answer: they differ in whether the answer must be marked and how loosely numbers read."""

    def reward(prompts: list[Any], completions: list[Any], **kw: Any) -> Scores:
        references = _column(kw, column, name, len(completions))
        scores: Scores = []
        for completion, value in zip(completions, references):
            reference = _reference(value)
            if reference is None:  # no right answer for this row: the reward does not apply
                scores.append(None)
                continue
            text = completion_text(completion)
            predicted = extract_final_answer(text)
            if predicted is None and not needs_marker:
                predicted = text
            right = predicted is not None and answers_match(predicted, reference, lenient_numbers=needs_marker)
            scores.append(float(right))
        return scores

    return reward


def _column(kw: dict[str, Any], column: str, reward: str, n: int) -> list[Any]:
    if column not in kw:
        columns = sorted(k for k in kw if k not in TRL_KWARGS)
        raise RewardFunctionError(
            f"reward {reward!r} needs the dataset column {column!r}, but the prompts only come with: "
            f"{', '.join(columns) or 'no other columns'}",
            hint="set answer_column in that [[grpo.rewards]] table to the column holding the right answer",
        )
    return list(kw[column])[:n]


def _format_reward(pattern: re.Pattern[str]) -> RewardCallable:
    def reward(prompts: list[Any], completions: list[Any], **kw: Any) -> Scores:
        return [float(pattern.fullmatch(completion_text(c)) is not None) for c in completions]

    return reward


def _length_reward(max_chars: int) -> RewardCallable:
    def reward(prompts: list[Any], completions: list[Any], **kw: Any) -> Scores:
        # No bonus for brevity (that would reward empty answers); past the limit the penalty grows to -1 at twice it.
        excess = [len(completion_text(c)) - max_chars for c in completions]
        return [max(-1.0, -e / max_chars) if e > 0 else 0.0 for e in excess]

    return reward


_FENCED = re.compile(r"```(?:json)?[ \t]*\n(.*?)\n?```", re.DOTALL | re.IGNORECASE)


def _is_json_document(text: str) -> bool:
    """An object or array, alone or as the completion's only fenced block.

    Bare scalars ('42', '"ok"') are valid JSON too, but a model rewarded for them learns to answer
    with one word: JSON rewards exist to teach structured output.
    """
    text = text.strip()
    fenced = _FENCED.fullmatch(text)
    if fenced:
        text = fenced.group(1).strip()
    try:
        return isinstance(json.loads(text), (dict, list))
    except ValueError:
        return False


def _json_reward(prompts: list[Any], completions: list[Any], **kw: Any) -> Scores:
    return [float(_is_json_document(completion_text(c))) for c in completions]


# --------------------------------------------------------------------------- the set the engine uses


@dataclass
class _Batch:
    prompts: list[str]
    completions: list[str]
    scores: dict[str, Scores] = field(default_factory=dict)


class _Recorded:
    """A reward callable that also hands its scores to the RewardSet; TRL names it by `__name__`.

    Not picklable (closures, a live RewardSet): only TRL's experimental async GRPO ships rewards to
    another process, and the sample log must stay in this one anyway.
    """

    def __init__(self, owner: RewardSet, name: str, fn: RewardCallable) -> None:
        self.__name__ = name
        self._owner = owner
        self._fn = fn

    def __call__(self, prompts: list[Any], completions: list[Any], **kw: Any) -> Scores:
        scores = self._fn(prompts=prompts, completions=completions, **kw)
        self._owner._record(self.__name__, prompts, completions, scores)
        return scores

    def __repr__(self) -> str:
        return f"<reward {self.__name__}>"


@dataclass
class RewardSet:
    """Functions for GRPOTrainer(reward_funcs=...), weights for GRPOConfig(reward_weights=...), and a sample log."""

    functions: list[RewardCallable]
    weights: list[float]
    names: list[str]
    emit: Emit | None = None  # where the "this reward scores nothing" warning goes
    wheres: dict[str, str] = field(default_factory=dict)  # reward name -> its config key, for messages
    _batch: _Batch | None = field(default=None, repr=False)
    _silent: dict[str, int] = field(default_factory=dict, repr=False)  # batches in a row without a score

    def _record(self, name: str, prompts: list[Any], completions: list[Any], scores: Scores) -> None:
        self._check_scored(name, scores)
        texts = [completion_text(c) for c in completions]
        # TRL scores one generation batch with each function in turn; a function scoring again, or other
        # completions, means a new batch. Only the latest is kept: the log wants a sample, not history.
        batch = self._batch
        if batch is None or name in batch.scores or batch.completions != texts:
            batch = self._batch = _Batch(prompts=[prompt_text(p) for p in prompts], completions=texts)
        batch.scores[name] = scores

    def _check_scored(self, name: str, scores: Scores) -> None:
        """A reward that gives no completion a score (every value None or NaN) adds 0 to every reward in
        TRL, so GRPO trains on nothing while the log looks calm: warn at once, stop after a few batches."""
        if any(s is not None and math.isfinite(s) for s in scores):
            self._silent[name] = 0
            return
        silent = self._silent[name] = self._silent.get(name, 0) + 1
        where = f"{self.wheres.get(name, 'grpo.rewards')} ({name})"
        hint = ("check what it reads: the answer column and its format, the pattern, or a python reward's "
                "return value (a float per completion; None only where it does not apply)")
        if silent >= SILENT_BATCHES_TO_STOP:
            raise ConfigError(f"{where}: no completion got a score in {silent} generation batches in a row "
                              f"(every value None or NaN): GRPO would train on nothing", hint=hint)  # fmt: skip
        if silent == 1 and self.emit is not None:
            self.emit(Warning(message=f"{where} gave no completion a score in this batch (every value None or NaN); "
                                      f"the run stops if that happens {SILENT_BATCHES_TO_STOP} times in a row",
                              hint=hint))  # fmt: skip

    def take_samples(self) -> list[ScoredCompletion]:
        """The completions of the latest scored batch with each reward and the weighted total; then forget them."""
        batch, self._batch = self._batch, None
        if batch is None:
            return []
        samples = []
        for i, (prompt, completion) in enumerate(zip(batch.prompts, batch.completions)):
            rewards = {name: batch.scores[name][i] if name in batch.scores else None for name in self.names}
            # Like TRL's nansum: a reward that does not apply adds nothing.
            total = sum(w * (rewards[n] or 0.0) for n, w in zip(self.names, self.weights))
            samples.append(ScoredCompletion(prompt=prompt, completion=completion, rewards=rewards, total=total))
        return samples


def columns_read(specs: Sequence[RewardFunction], key: str = "grpo.rewards") -> list[tuple[str, str, str]]:
    """(config key, reward name, dataset column) for each reward that reads a column of the prompt rows:
    the data is checked for them when it is prepared, before a model loads (prepare.py). A python reward
    may read any column; only its own code knows which, so it is not listed. `key`: where the specs sit."""
    return [
        (f"{key}[{i}]", spec.name, spec.answer_column)
        for i, spec in enumerate(specs)
        if spec.name in ("exact_match", "math_answer")
    ]


def build_reward_functions(
    specs: Sequence[RewardFunction], *, resolve_model: Callable[[str], Path], device: str, emit: Emit | None = None,
    key: str = "grpo.rewards",
) -> RewardSet:
    """Build every reward now, so a bad pattern, file or model fails before training starts; messages name
    each as `key`[i] (the config table the specs came from).

    A reward_model is loaded here too (not lazily on the first batch) for the same reason.
    """
    reward_set = RewardSet(functions=[], weights=[], names=[], emit=emit)
    for i, spec in enumerate(specs):
        name, fn = _build_one(spec, f"{key}[{i}]", resolve_model, device)
        name = _unique(name, reward_set.names)
        reward_set.wheres[name] = f"{key}[{i}]"
        reward_set.functions.append(_Recorded(reward_set, name, fn))
        reward_set.weights.append(float(spec.weight))
        reward_set.names.append(name)
    return reward_set


def _build_one(
    spec: RewardFunction, where: str, resolve_model: Callable[[str], Path], device: str
) -> tuple[str, RewardCallable]:
    if spec.name in ("exact_match", "math_answer"):
        return spec.name, _answer_reward(spec.name, spec.answer_column, needs_marker=spec.name == "math_answer")
    if spec.name == "format":
        pattern = re.compile(str(spec.pattern), re.DOTALL)  # the schema has checked that it compiles
        return "format", _format_reward(pattern)
    if spec.name == "length":
        return "length", _length_reward(int(spec.max_chars or 1))
    if spec.name == "json":
        return "json", _json_reward
    # The rewards read from files live in their own module (imported here: it needs rewards.py's helpers).
    from smoltrain.engine.techniques import external_rewards

    if spec.name == "python":
        fn = external_rewards.load_user_function(spec, where)
        return str(spec.function), external_rewards.python_reward(fn, f"{spec.function!r} ({spec.path})")
    if spec.name == "reward_model":
        return "reward_model", external_rewards.load_reward_model(resolve_model(str(spec.model)), device, where)
    raise ConfigError(f"{where}.name: unknown reward {spec.name!r}")  # the schema's Literal makes this unreachable


def _unique(name: str, taken: list[str]) -> str:
    """Two rewards of one kind would be merged in TRL's metrics; number the later ones."""
    candidate, n = name, 2
    while candidate in taken:
        candidate, n = f"{name}_{n}", n + 1
    return candidate
