"""`smoltrain data` and the data half of `smoltrain validate`: what the model will see, as terminal text.

    smoltrain data PRESET.toml [--rows N]      # shape, row counts, lengths, truncation, the first rows marked

Both take every stage's data through the engine's `inspect_data` with the model's tokenizer (no
weights): the same loading, chat-template fitting and training mask as the worker, so what is shown
is what will be trained on, and a row the template rejects fails here with the row's line.

Imports the engine lazily (transformers, datasets): `smoltrain --help` never loads this module.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

from smoltrain.config.load import stage_configs
from smoltrain.config.schema import RunConfig
from smoltrain.errors import SmoltrainError

_TRAINED_ON = "\x1b[7;32m"  # reverse green, as the wizard's preview
_RESET = "\x1b[0m"


def describe_data(cfg: RunConfig, rows: int = 3, color: bool | None = None) -> Iterator[str]:
    """Lines for `smoltrain data`: each stage's data as the model will see it. Raises SmoltrainError."""
    from smoltrain.engine.data.inspect import inspect_data
    from smoltrain.engine.model import load_tokenizer

    color = sys.stdout.isatty() if color is None else color
    tokenizer = load_tokenizer(cfg.model)
    yield f"model: {cfg.model.name_or_path}"
    for name, stage in stage_configs(cfg):
        assert stage.data is not None
        if stage.data.curated:
            yield ""
            yield f"stage {name} ({stage.train.technique}): {_curated_words(stage)}"
            continue
        seen = inspect_data(stage.data, stage.train, stage.sft, tokenizer, model=cfg.model.name_or_path, show=rows,
                            rewards=stage.technique_rewards)  # fmt: skip
        yield ""
        yield f"stage {name} ({stage.train.technique}): {seen.prepared.report.source}"
        yield from (f"  {line}" for line in _summary(seen, stage))
        if rows:
            marks = "highlighted" if color else "between « and »"
            yield f"  first rows, as the model sees them (trained tokens {marks}):"
            for index, pieces in enumerate(seen.rows_shown(rows)):
                yield f"  row {index + 1}:"
                yield from ("    " + line for line in _marked(pieces, color).splitlines())


def check_data(cfg: RunConfig) -> list[str]:
    """For `smoltrain validate`: a line per stage on its data as the model will see it, or what could not
    be checked offline. Raises SmoltrainError for data or a template that would fail the run."""
    from smoltrain.engine.data.inspect import inspect_data
    from smoltrain.engine.model import load_tokenizer

    try:
        tokenizer = load_tokenizer(cfg.model)
        lines = []
        for name, stage in stage_configs(cfg):
            assert stage.data is not None
            if stage.data.curated:
                lines.append(f"  {name}: {_curated_words(stage)}")
                continue
            seen = inspect_data(stage.data, stage.train, stage.sft, tokenizer, model=cfg.model.name_or_path, show=0,
                                rewards=stage.technique_rewards)  # fmt: skip
            report = seen.prepared.report
            line = f"  {name}: {report.rows_kept} of {report.rows_read} rows kept, longest {max(seen.lengths)} tokens"
            if stage.group_sampling is None and not seen.packing:
                line += f", {seen.truncated} truncated by train.max_length {seen.max_length}"
            lines.append(line)
            lines.extend(f"    note: {fix}: {rows} rows" for fix, rows in report.fixed.items())
        return lines
    except SmoltrainError as exc:
        if not exc.needs_network:
            raise
        return [f"  data and chat template not checked: {exc.message}"]


def _summary(seen: Any, stage: RunConfig) -> list[str]:
    prepared, report = seen.prepared, seen.prepared.report
    technique = stage.train.technique
    how = f"trained as {prepared.trl_format}"
    if prepared.text_format:
        how += f", {prepared.text_format}"
    if prepared.mask_source and prepared.trl_format != "text":
        how += f" (mask from {prepared.mask_source})"
    lines = [f"shape: {prepared.format}, {how}"]
    eval_rows = len(prepared.eval) if prepared.eval is not None else 0
    lines.append(f"rows: {report.rows_read} read, {report.rows_kept} kept ({len(prepared.train)} train, {eval_rows} eval)")
    lines.extend(f"dropped: {reason}: {count} (first at {report.first_dropped_at.get(reason, '?')})"
                 for reason, count in report.dropped.items())  # fmt: skip
    lines.extend(f"fitted to the chat template: {fix}: {count} rows" for fix, count in report.fixed.items())
    if technique == "kto":
        lines.append(_labels(prepared.train, report.unpaired_note))
    n = len(seen.lengths)
    if not n:
        return lines
    what = {"grpo": "prompt", "rloo": "prompt", "reward": "prompt + chosen", "dpo": "prompt + chosen",
            "kto": "prompt + answer"}.get(technique, "training")
    lines.append(f"tokens per {what} row: median {seen.percentile(0.5)}, p90 {seen.percentile(0.9)}, "
                 f"p95 {seen.percentile(0.95)}, p99 {seen.percentile(0.99)}, max {max(seen.lengths)}")  # fmt: skip
    if stage.group_sampling is not None:
        length = stage.group_sampling.max_completion_length
        lines.append(f"completions: sampled, up to {technique}.max_completion_length = {length} tokens")
        return lines
    total, trained = sum(seen.lengths), sum(seen.trained)
    label = "trained tokens" if technique == "sft" else "answer tokens"
    lines.append(f"{label}: {trained:,} of {total:,} ({trained / max(total, 1):.0%})")
    if seen.packing:
        lines.append(f"train.max_length {seen.max_length}: rows are packed into sequences of that length")
    else:
        lines.append(f"train.max_length {seen.max_length}: {seen.truncated} of {n} rows truncated, "
                     f"{seen.cut:,} {label} cut, {seen.emptied} rows left with nothing to learn (dropped)")  # fmt: skip
    return lines


def _curated_words(stage: RunConfig) -> str:
    from smoltrain.config.pipeline import CURATED_READERS

    assert stage.data is not None
    return (f"the {CURATED_READERS[stage.train.technique]} that curate stage {stage.data.curated!r} keeps "
            "(read when that stage has run)")


def _labels(train: Any, unpaired: str) -> str:
    """KTO's label counts: a lopsided balance needs kto.desirable_weight or undesirable_weight to even it out."""
    desirable = sum(train["label"])
    text = f"labels (train): {desirable} desirable, {len(train) - desirable} undesirable"
    return text + (f"; {unpaired}" if unpaired else "")


def _marked(pieces: list[Any], color: bool) -> str:
    if color:
        return "".join(f"{_TRAINED_ON}{p.text}{_RESET}" if p.trained else p.text for p in pieces)
    return "".join(f"«{p.text}»" if p.trained else p.text for p in pieces)
