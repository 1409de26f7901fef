"""Dataset preview for the wizard: the first rows as the model sees them, the detected format, the
token-length histogram and a suggested max_length.

Rows are converted by the engine's own data code (prepare_datasets) and tokenized with the chosen
model's tokenizer and chat template; the tokens the loss is computed on are marked, so a user sees
at once whether "train on the answers only" is what happens. Heavy: transformers and datasets are
imported inside `build_preview`, which the wizard calls from a worker thread. Importing this module
imports neither torch nor textual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PREVIEW_ROWS = 3
MEASURE_ROWS = 2000  # rows tokenized for the histogram: enough for a stable 95th percentile
_MAX_SHOWN_TOKENS = 160


@dataclass
class Piece:
    text: str
    trained: bool


@dataclass
class Preview:
    source: str
    format: str  # the shape found in the file
    trl_format: str
    summary: str  # rows read, kept, dropped
    rows: list[list[Piece]] = field(default_factory=list)
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


def _pieces(tokenizer: Any, ids: list[int], mask: list[int]) -> list[Piece]:
    """Consecutive tokens with the same trained flag, decoded together (per-token decoding splits words)."""
    pieces: list[Piece] = []
    ids, mask = ids[:_MAX_SHOWN_TOKENS], mask[:_MAX_SHOWN_TOKENS]
    start = 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or mask[i] != mask[start]:
            pieces.append(Piece(tokenizer.decode(ids[start:i]), bool(mask[start])))
            start = i
    return pieces


def _encode(tokenizer: Any, part: Any, *, generation_prompt: bool = False) -> list[int]:
    """A string, or chat turns through the chat template."""
    if isinstance(part, list):
        out = tokenizer.apply_chat_template(part, tokenize=True, add_generation_prompt=generation_prompt, return_dict=True)
        return list(out["input_ids"])
    return list(tokenizer(part, add_special_tokens=False)["input_ids"])


def tokenize_row(tokenizer: Any, row: dict[str, Any], trl_format: str, loss_on: str) -> tuple[list[int], list[int]]:
    """(token ids, trained mask) of one converted row, the way the technique's trainer builds it."""
    everything = loss_on == "all"
    if trl_format == "messages":
        out = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        ids = list(out["input_ids"])
        mask = [1] * len(ids) if everything else list(out.get("assistant_masks") or [1] * len(ids))
        return ids, mask
    if trl_format == "text":
        ids = _encode(tokenizer, row["text"])
        return ids, [1] * len(ids)
    if trl_format == "prompt_only":
        ids = _encode(tokenizer, row["prompt"], generation_prompt=True)
        return ids, [0] * len(ids)  # GRPO samples the completions; the prompt itself is never a target
    # Preference pairs: both answers are scored; show the chosen one (rejected has the same shape).
    answer = row["completion"] if trl_format == "prompt_completion" else row["chosen"]
    prompt, completion = _encode_pair(tokenizer, row.get("prompt"), answer)
    prompt_flag = int(everything and trl_format == "prompt_completion")
    return prompt + completion, [prompt_flag] * len(prompt) + [1] * len(completion)


def _encode_pair(tokenizer: Any, prompt: Any, answer: Any) -> tuple[list[int], list[int]]:
    """Prompt and answer tokens; chat turns go through the template together, as TRL does, so the
    answer is not wrapped in a second assistant header."""
    if isinstance(answer, list):
        full = _encode(tokenizer, (prompt or []) + answer)
        head = _encode(tokenizer, prompt, generation_prompt=True) if prompt else []
        return full[: len(head)], full[len(head) :]
    return (_encode(tokenizer, prompt) if prompt else []), _encode(tokenizer, answer)


def build_preview(draft_raw: dict[str, Any], measure_rows: int = MEASURE_ROWS) -> Preview:
    """Load, convert and tokenize the draft's data with its model's tokenizer. Raises SmoltrainError."""
    from transformers import AutoTokenizer

    from smoltrain.config.schema import DataSection, TrainSection
    from smoltrain.engine.data import prepare_datasets
    from smoltrain.errors import ModelError

    train = TrainSection.model_validate(draft_raw.get("train", {}))
    data = DataSection.model_validate({**draft_raw["data"], "eval_fraction": 0.0, "eval_split": None,
                                       "max_rows": min(measure_rows, draft_raw["data"].get("max_rows") or measure_rows)})  # fmt: skip
    model = draft_raw["model"]["name_or_path"]
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=draft_raw["model"].get("trust_remote_code", False))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {model!r}: {exc}".split("\n")[0],
                         hint="check the model id or path, and that you are online for hub models") from None  # fmt: skip
    prepared = prepare_datasets(data, train.technique, seed=train.seed)
    loss_on = draft_raw.get("sft", {}).get("loss_on", "completion")
    preview = Preview(prepared.report.source, prepared.format, prepared.trl_format, prepared.report.summary(),
                      max_length=train.max_length)  # fmt: skip
    for i, row in enumerate(prepared.train):
        ids, mask = tokenize_row(tokenizer, row, prepared.trl_format, loss_on)
        preview.lengths.append(len(ids))
        if i < PREVIEW_ROWS:
            preview.rows.append(_pieces(tokenizer, ids, mask))
    return preview
