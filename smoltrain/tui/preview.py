"""Dataset preview for the wizard: the first rows as the model sees them, the detected format, the
dataset's statistics (columns, train/eval rows, turns, answer lengths), the token-length histogram
and a suggested max_length.

The rows come from the engine's own `inspect_data` (the same preparation, chat template fitting and
training mask as the worker and `smoltrain data`), so the highlighted tokens are exactly the ones the
run trains on; preference pairs show the rejected answer too, GRPO prompts the columns the rewards read.
Heavy: transformers and datasets are imported inside `build_preview`, which the wizard calls from a
worker thread; `missing_local_file` imports the engine's loader only for a path that does not exist.
Importing this module imports neither torch nor textual.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrain.names import looks_like_path

PREVIEW_ROWS = 3
MEASURE_ROWS = 2000  # rows tokenized for the histogram: enough for a stable 95th percentile


@dataclass
class Preview:
    source: str
    format: str  # the shape found in the file
    trl_format: str
    summary: str  # rows read, kept, dropped
    technique: str = "sft"
    rows: list[list[Any]] = field(default_factory=list)  # inspect.Piece runs: (text, trained)
    rejected_rows: list[list[Any]] = field(default_factory=list)  # preference: prompt + rejected answer, as rows
    answers: list[dict[str, Any]] = field(default_factory=list)  # GRPO: the columns the rewards read; KTO: label
    lengths: list[int] = field(default_factory=list)
    max_length: int = 0
    columns: list[str] = field(default_factory=list)  # the source's columns
    rows_kept: int = 0
    eval_rows: int = 0
    eval_from: str = ""  # "data.eval_fraction 0.05", "data.eval_split 'test'" or ""
    read_all: bool = True  # False when only the first MEASURE_ROWS rows were read
    turns: list[int] = field(default_factory=list)  # chat turns per row (0: plain text)
    chosen_tokens: list[int] = field(default_factory=list)  # preference: answer tokens of each pair
    rejected_tokens: list[int] = field(default_factory=list)

    @property
    def fitting(self) -> int:
        return sum(n <= self.max_length for n in self.lengths)

    def suggested_max_length(self) -> int:
        """The 95th percentile of the lengths, rounded up to a multiple of 64: the few longer rows are truncated."""
        if not self.lengths:
            return self.max_length
        ordered = sorted(self.lengths)
        p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
        return max(64, -(-p95 // 64) * 64)

    def stats(self) -> list[str]:
        """A few short lines: columns and turns, train/eval rows, chosen vs rejected answer lengths."""
        first = f"columns: {', '.join(self.columns)}"
        if any(self.turns):
            first += f" · turns per row: median {_median(self.turns)}, max {max(self.turns)}"
        read = "" if self.read_all else f"first {self.rows_kept} rows read: "
        if self.eval_from.startswith("data.eval_split"):
            split = f"{self.rows_kept} train + {self.eval_rows} eval ({self.eval_from}, rows as read)"
        elif self.eval_rows:
            split = f"{self.rows_kept - self.eval_rows} train + {self.eval_rows} eval ({self.eval_from})"
        else:
            split = f"{self.rows_kept} train, no eval"
        lines = [first, f"rows: {read}{split}"]
        if self.chosen_tokens and self.rejected_tokens:
            lines.append(f"answer tokens, median: chosen {_median(self.chosen_tokens)}, "
                         f"rejected {_median(self.rejected_tokens)}")  # fmt: skip
        return lines

    def histogram(self, bins: int = 8, width: int = 30) -> list[str]:
        """Text bars: '  64-127  ████████  812'."""
        if not self.lengths:
            return []
        low, high = min(self.lengths), max(self.lengths)
        step = max(1, -(-(high - low + 1) // bins))
        counts = [0] * bins
        for n in self.lengths:
            counts[min(bins - 1, (n - low) // step)] += 1
        most = max(counts) or 1
        return [
            f"{low + i * step:>6}-{low + (i + 1) * step - 1:<6} {'█' * max(1 if c else 0, round(c / most * width)):<{width}} {c}"
            for i, c in enumerate(counts)
        ]


def build_preview(draft_raw: dict[str, Any], measure_rows: int = MEASURE_ROWS) -> Preview:
    """Load, convert and tokenize the draft's data with its model's tokenizer. Raises SmoltrainError."""
    from smoltrain.config.schema import (
        REWARDS_SECTIONS,
        DataSection,
        GrpoSection,
        ModelSection,
        RewardFunction,
        SftSection,
        TrainSection,
    )
    from smoltrain.engine.data.inspect import held_out, inspect_data
    from smoltrain.engine.model import load_tokenizer

    train = TrainSection.model_validate(draft_raw.get("train", {}))
    wanted = DataSection.model_validate(draft_raw["data"])
    measured = min(measure_rows, wanted.max_rows or measure_rows)
    # Eval rows are counted from the rows prepared here (held_out), so none is tokenized twice.
    data = wanted.model_copy(update={"eval_fraction": 0.0, "eval_split": None, "max_rows": measured})
    sft = SftSection.model_validate(draft_raw.get("sft", {}))
    model = ModelSection.model_validate(draft_raw["model"])
    rewards = GrpoSection.model_validate(draft_raw.get("grpo", {})).rewards
    own = REWARDS_SECTIONS.get(train.technique, "grpo")
    if own != "grpo":  # its own [[rloo.rewards]] / [[curate.rewards]] (curate's default: GRPO's, RunConfig.curate_rewards)
        rewards = [RewardFunction.model_validate(r) for r in draft_raw.get(own, {}).get("rewards", [])] or rewards
    seen = inspect_data(data, train, sft, load_tokenizer(model), model=model.name_or_path, show=PREVIEW_ROWS,
                        rewards=rewards, rejected=True)  # fmt: skip
    prepared, report = seen.prepared, seen.prepared.report
    if wanted.eval_split is not None:
        eval_from = f"data.eval_split {wanted.eval_split!r}"
    else:
        eval_from = f"data.eval_fraction {wanted.eval_fraction:g}" if wanted.eval_fraction > 0 else ""
    return Preview(
        report.source, prepared.format, prepared.trl_format, report.summary(), technique=train.technique,
        rows=seen.rows_shown(PREVIEW_ROWS), rejected_rows=seen.rejected_shown(PREVIEW_ROWS), answers=seen.answers,
        lengths=seen.lengths, max_length=train.max_length, columns=report.columns, rows_kept=report.rows_kept,
        eval_rows=held_out(wanted, prepared, train.seed), eval_from=eval_from,
        read_all=report.rows_read < measured or measured == wanted.max_rows, turns=seen.turns,
        chosen_tokens=seen.trained if seen.rejected_trained else [], rejected_tokens=seen.rejected_trained,
    )


def missing_local_file(path: str) -> str | None:
    """What is wrong with a data.path that names a local file (not a hub id) that does not exist, else None:
    the engine's loader decides what looks like a path, as it does when the run starts."""
    if Path(path).expanduser().exists():
        return None
    if not looks_like_path(path):
        return None  # a hub id: the preview (or the run) looks it up
    return f"{path}: file not found (relative paths start from {os.getcwd()}); check the path, or pick a dataset"


def _median(values: list[int]) -> int:
    return round(statistics.median(values)) if values else 0
