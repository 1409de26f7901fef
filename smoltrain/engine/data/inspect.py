"""What the model will see, before any weights load: `smoltrain data`, `smoltrain validate` and the wizard's preview.

    seen = inspect_data(cfg.data, cfg.train, cfg.sft, tokenizer, model=name)   # prepared as training prepares it
    seen.lengths, seen.trained                              # tokens, and trained tokens, of every training row
    seen.truncated, seen.cut, seen.emptied                  # what train.max_length does to them
    seen.rows_shown(3)                                      # the first rows as (text, trained) pieces
    seen.turns, seen.answers                                # chat turns per row; the reward columns of the rows shown
    inspect_data(..., rejected=True).rejected_shown(3)      # preference pairs: the rejected answers too
    held_out(cfg.data, seen.prepared, cfg.train.seed)       # eval rows the run holds out, counted without tokenizing

The rows come from `prepare_datasets` with the model's tokenizer, exactly as the worker prepares
them: SFT rows carry the training mask (input_ids, assistant_masks) that TRL will train on; other
techniques' rows are tokenized as their trainers see them (RowTokens.display: a preference pair's
prompt and chosen answer, the answer marked; with `rejected=True` the rejected answer the same way).
Nothing here computes a mask of its own.

A stage whose every training row loses all its trained tokens to train.max_length is a DataError,
as it is in the worker's preflight (TRL drops such rows; none would be left).

Imports datasets and the tokenizer's library through prepare.py; never torch or textual itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from smoltrain.config.schema import (
    DataSection,
    RewardFunction,
    SftSection,
    TrainSection,
)
from smoltrain.config.techniques import facts
from smoltrain.engine.data.prepare import PreparedData, _hold_out, _load_eval, prepare_datasets
from smoltrain.engine.data.tokens import RowTokens
from smoltrain.engine.techniques.rewards import columns_read
from smoltrain.errors import DataError

_MAX_SHOWN_TOKENS = 160


@dataclass
class Piece:
    text: str
    trained: bool


@dataclass
class DataInspection:
    prepared: PreparedData
    max_length: int
    packing: bool
    lengths: list[int] = field(default_factory=list)  # tokens of each training row
    trained: list[int] = field(default_factory=list)  # trained tokens of each training row
    kept_trained: list[int] = field(default_factory=list)  # ... of them within max_length
    turns: list[int] = field(default_factory=list)  # chat turns of each training row (0 for plain text)
    rejected_trained: list[int] = field(default_factory=list)  # preference, rejected=True: rejected answer tokens
    answers: list[dict[str, Any]] = field(default_factory=list)  # GRPO: the columns the rewards read; KTO: label
    _rows: list[tuple[list[int], list[int]]] = field(default_factory=list, repr=False)
    _rejected_rows: list[tuple[list[int], list[int]]] = field(default_factory=list, repr=False)
    _tokenizer: Any = field(default=None, repr=False)

    @property
    def truncated(self) -> int:
        """Rows longer than max_length (packing cuts the packed sequences instead of rows)."""
        return 0 if self.packing else sum(n > self.max_length for n in self.lengths)

    @property
    def cut(self) -> int:
        """Trained tokens beyond max_length, lost to truncation."""
        return 0 if self.packing else sum(self.trained) - sum(self.kept_trained)

    @property
    def emptied(self) -> int:
        """Rows whose trained tokens all lie beyond max_length: TRL drops them."""
        return 0 if self.packing else sum(1 for t, k in zip(self.trained, self.kept_trained) if t and not k)

    def percentile(self, q: float) -> int:
        ordered = sorted(self.lengths)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0

    def rows_shown(self, count: int) -> list[list[Piece]]:
        """The first `count` training rows: runs of tokens decoded together, each trained or not."""
        return [_pieces(self._tokenizer, ids, mask) for ids, mask in self._rows[:count]]

    def rejected_shown(self, count: int) -> list[list[Piece]]:
        """Preference pairs inspected with rejected=True: the first rows' prompt and rejected answer (marked)."""
        return [_pieces(self._tokenizer, ids, mask) for ids, mask in self._rejected_rows[:count]]


def inspect_data(
    data: DataSection,
    train: TrainSection,
    sft: SftSection,
    tokenizer: Any,
    *,
    model: str,
    show: int = 3,
    rewards: Sequence[RewardFunction] = (),
    rejected: bool = False,
) -> DataInspection:
    """Prepare one stage's data as the worker would, and measure what train.max_length does to it.
    GRPO: `rewards` (grpo.rewards) are checked against the rows' columns, as the worker checks them, and
    the columns they read are kept for the rows shown. `rejected`: preference pairs' rejected answers are
    tokenized and measured too (twice the tokenizing, so only when asked)."""
    technique = train.technique
    prepared = prepare_datasets(data, technique, seed=train.seed, tokenizer=tokenizer, loss_on=sft.loss_on, model=model,
                                rewards=rewards)  # fmt: skip
    seen = DataInspection(prepared, train.max_length, sft.packing and technique == "sft", _tokenizer=tokenizer)
    display = RowTokens(tokenizer, sft.loss_on) if technique != "sft" else None
    pairs = display if rejected and prepared.trl_format.startswith("preference") else None
    answer_columns = sorted({column for _, _, column in columns_read(rewards)}) if facts(technique).prompts_only else []
    for index, row in enumerate(prepared.train):
        if display is None:
            ids, mask = row["input_ids"], row["assistant_masks"]
        else:
            ids, mask = display.display(row, prepared.trl_format)
        seen.lengths.append(len(ids))
        seen.trained.append(sum(mask))
        seen.kept_trained.append(sum(mask[: train.max_length]))
        seen.turns.append(_turns(row))
        if pairs is not None:
            # The rejected answer in the chosen one's place: tokenized exactly as the chosen one is.
            rejected_ids, rejected_mask = pairs.display({**row, "chosen": row["rejected"]}, prepared.trl_format)
            seen.rejected_trained.append(sum(rejected_mask))
        if index < show:
            seen._rows.append((list(ids), list(mask)))
            if pairs is not None:
                seen._rejected_rows.append((list(rejected_ids), list(rejected_mask)))
            if answer_columns:
                seen.answers.append({column: row.get(column) for column in answer_columns})
            elif prepared.trl_format == "unpaired":  # KTO: whether the answer shown is a desirable one
                seen.answers.append({"label": row["label"]})
    if technique == "sft" and not seen.packing and seen.emptied == len(seen.lengths):
        raise DataError(
            f"{prepared.report.source}: all {len(seen.lengths)} training rows lose every trained token to "
            f"train.max_length = {train.max_length} (their answers start after it)",
            hint="raise train.max_length, shorten the prompts, or set sft.loss_on = 'all'",
        )
    return seen


def held_out(data: DataSection, prepared: PreparedData, seed: int) -> int:
    """The eval rows a run of `data` holds out, counted without tokenizing anything more: data.eval_fraction
    splits `prepared` (prepared with eval_fraction 0) as the run does; a data.eval_split is counted as read
    (its rows, before any are dropped). Raises DataError as the run would (too few rows to hold out)."""
    if data.eval_split is not None:
        return len(_load_eval(data).rows)
    if data.eval_fraction > 0:
        return len(_hold_out(prepared.train, data.eval_fraction, seed, prepared.report.source)[1])
    return 0


def _turns(row: dict[str, Any]) -> int:
    """Chat turns in a converted row: its messages, or its prompt and answer turns (0 for plain text)."""
    return sum(len(row[key]) for key in ("messages", "prompt", "completion", "chosen") if isinstance(row.get(key), list))


def _pieces(tokenizer: Any, ids: list[int], mask: list[int]) -> list[Piece]:
    """Consecutive tokens with the same trained flag. Each run's text is what it adds to the decoded row:
    decoded alone, a SentencePiece run would lose its leading space ("▁10" decodes as "10")."""
    pieces: list[Piece] = []
    ids, mask = ids[:_MAX_SHOWN_TOKENS], mask[:_MAX_SHOWN_TOKENS]
    start, shown = 0, ""
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            text = tokenizer.decode(ids[:i])
            pieces.append(Piece(text[len(shown) :] if text.startswith(shown) else tokenizer.decode(ids[start:i]),
                                bool(mask[start])))  # fmt: skip
            start, shown = i, text
    return pieces
