"""Dataset preview for the wizard: the first rows as the model sees them, the detected format, the
token-length histogram and a suggested max_length.

The rows come from the engine's own `inspect_data` (the same preparation, chat template fitting and
training mask as the worker and `smoltrain data`), so the highlighted tokens are exactly the ones the
run trains on. Heavy: transformers and datasets are imported inside `build_preview`, which the
wizard calls from a worker thread. Importing this module imports neither torch nor textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PREVIEW_ROWS = 3
MEASURE_ROWS = 2000  # rows tokenized for the histogram: enough for a stable 95th percentile


@dataclass
class Preview:
    source: str
    format: str  # the shape found in the file
    trl_format: str
    summary: str  # rows read, kept, dropped
    rows: list[list[Any]] = field(default_factory=list)  # inspect.Piece runs: (text, trained)
    lengths: list[int] = field(default_factory=list)
    max_length: int = 0

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
        DataSection,
        ModelSection,
        SftSection,
        TrainSection,
    )
    from smoltrain.engine.data.inspect import inspect_data
    from smoltrain.engine.model import load_tokenizer

    train = TrainSection.model_validate(draft_raw.get("train", {}))
    data = DataSection.model_validate({**draft_raw["data"], "eval_fraction": 0.0, "eval_split": None,
                                       "max_rows": min(measure_rows, draft_raw["data"].get("max_rows") or measure_rows)})  # fmt: skip
    sft = SftSection.model_validate(draft_raw.get("sft", {}))
    model = ModelSection.model_validate(draft_raw["model"])
    seen = inspect_data(data, train, sft, load_tokenizer(model), model=model.name_or_path, show=PREVIEW_ROWS)
    prepared = seen.prepared
    return Preview(prepared.report.source, prepared.format, prepared.trl_format, prepared.report.summary(),
                   rows=seen.rows_shown(PREVIEW_ROWS), lengths=seen.lengths, max_length=train.max_length)  # fmt: skip
