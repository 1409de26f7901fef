"""Fit a run to a GPU: propose the batch shape (as `--set` overrides) under which it fits with a margin.

The search keeps what changes the training itself for last. First, at the same effective batch
(micro_batch_size x grad_accum), the largest micro-batch that fits, with the preset's gradient
checkpointing or, failing that, with checkpointing on. Only when micro-batch 1 with checkpointing
still does not fit does it give something up, in this order: for SFT, reward models and DPO the
max_length (halved, down to 256: longer rows get truncated); for GRPO fewer prompts per step, then
shorter completions (down to 64 tokens), then fewer generations per prompt (down to 4). A pipeline
is fitted stage by stage, with `stages[i].` keys.

With distributed.gpus > 1 the search is per GPU and keeps the effective batch the preset asked for
(micro_batch_size x grad_accum x gpus: the per-GPU product stays). Under strategy auto, DDP at the
same effective batch comes first (the fastest), then FSDP with every concession above (sharding
changes nothing in the training), then DDP with them; a proposal that needs FSDP pins
`distributed.strategy = "fsdp"`, as the worker's own auto choice would otherwise weigh the changed
batch shape against one GPU and could pick DDP.

Imports no torch.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrain.config.load import apply_overrides, stage_configs, validate_config
from smoltrain.config.schema import RunConfig
from smoltrain.errors import FitError
from smoltrain.memory.estimate import (
    MemoryEstimate,
    estimate_stage,
    estimate_with_shape,
    load_shape,
    run_strategy,
)
from smoltrain.memory.shapes import ModelShape
from smoltrain.memory.sharding import effective_batch

MIN_MAX_LENGTH = 256
MIN_COMPLETION = 64
MIN_GENERATIONS = 4
BATCH = "train.micro_batch_size", "train.grad_accum", "train.gradient_checkpointing"


@dataclass
class FitProposal:
    """What to change (dotted keys, `stages[i].` for pipeline stages) and the estimate after the change."""

    overrides: dict[str, object]
    estimate: MemoryEstimate
    before: MemoryEstimate
    margin: float
    reasons: list[str] = field(default_factory=list)
    batch: list[str] = field(default_factory=list)  # with more than one GPU: each stage's effective batch

    def set_flags(self) -> list[str]:
        """The overrides as `--set` flags a user can paste."""
        return [f"--set {shlex.quote(f'{key}={json.dumps(value)}')}" for key, value in self.overrides.items()]

    def explain(self) -> str:
        gpu = self.estimate.gpu_mem_gb or 0.0
        target = f"{gpu * (1 - self.margin):.1f} GiB ({gpu:g} GiB less a {self.margin:.0%} margin)"
        head = f"before: {self.before.total_gb:.1f} GiB; target: at most {target}"
        if self.estimate.gpus > 1:
            head += f"\n{self.estimate.per_gpu}: " + "; ".join(self.batch)
        if not self.overrides:
            return f"{head}\nno change needed: the preset already makes the best use of this GPU"
        lines = [head, "proposed:", *(f"  {flag}" for flag in self.set_flags())]
        lines += [f"  ({reason})" for reason in self.reasons]
        lines.append(f"after: {self.estimate.total_gb:.1f} GiB, {self.estimate.verdict}")
        return "\n".join(lines)


def fit(
    cfg: RunConfig, gpu_mem_gb: float, margin: float = 0.1, model_config: str | Path | dict[str, Any] | None = None
) -> FitProposal:
    """Propose overrides under which `cfg` needs at most gpu_mem_gb x (1 - margin) (per GPU with
    distributed.gpus > 1); FitError if none does."""
    shape = load_shape(cfg, model_config)
    budget = gpu_mem_gb * (1 - margin)
    before = estimate_with_shape(cfg, shape, gpu_mem_gb)
    failed: FitError | None = None
    for strategy, relax in _attempts(cfg, before.strategy):
        try:
            overrides, reasons = _fit_stages(cfg, shape, budget, gpu_mem_gb, strategy, relax)
        except FitError as exc:
            failed = failed or exc  # the first attempt's message: the preset's own strategy
            continue
        fitted = _apply_to_preset(cfg, overrides)
        if run_strategy(fitted, shape, gpu_mem_gb)[0] != strategy:
            # auto would weigh the new batch shape against one GPU and could choose otherwise: say which.
            overrides["distributed.strategy"] = strategy
            reasons.append(f"{strategy}: the weights, grads and optimizer state sharded across {cfg.distributed.gpus} "
                           "GPUs" if strategy == "fsdp" else f"{strategy}: the strategy this shape was fitted for")  # fmt: skip
            fitted = _apply_to_preset(cfg, overrides)
        after = estimate_with_shape(fitted, shape, gpu_mem_gb)
        batch = _batch_lines(cfg, fitted) if cfg.distributed.gpus > 1 else []
        return FitProposal(overrides=overrides, estimate=after, before=before, margin=margin, reasons=reasons, batch=batch)
    assert failed is not None
    raise failed


def _batch_lines(cfg: RunConfig, fitted: RunConfig) -> list[str]:
    """Each stage's effective batch after the proposal, and whether it is the one the preset asked for."""
    lines = []
    for (name, old), (_, new) in zip(stage_configs(cfg), stage_configs(fitted)):
        asked = _per_gpu_batch(old) * old.distributed.gpus
        kept = "as the preset asks" if _per_gpu_batch(new) * new.distributed.gpus == asked else f"the preset asks {asked}"
        lines.append(f"{name + ': ' if cfg.stages else ''}effective batch {effective_batch(new)} ({kept})")
    return lines


def _attempts(cfg: RunConfig, resolved: str) -> list[tuple[str, bool]]:
    """(strategy, concessions allowed) in the order tried. auto: DDP at the preset's batch shape first,
    then FSDP (which changes nothing in the training) with concessions, then DDP with them."""
    if cfg.distributed.gpus > 1 and cfg.distributed.strategy == "auto":
        return [("ddp", False), ("fsdp", True), ("ddp", True)]
    return [(resolved, True)]


def _fit_stages(
    cfg: RunConfig, shape: ModelShape, budget: float, gpu: float, strategy: str, relax: bool
) -> tuple[dict[str, object], list[str]]:
    overrides: dict[str, object] = {}
    reasons: list[str] = []
    for i, (name, stage) in enumerate(stage_configs(cfg)):
        prefix = f"stages[{i}]." if cfg.stages else ""
        changes, why = _fit_stage(stage, shape, budget, gpu, name if cfg.stages else None, strategy, relax)
        overrides.update({prefix + key: value for key, value in changes.items()})
        reasons += [f"{name}: {reason}" if cfg.stages else reason for reason in why]
    return overrides, reasons


def _fit_stage(
    cfg: RunConfig, shape: ModelShape, budget: float, gpu: float, stage: str | None, strategy: str, relax: bool
) -> tuple[dict[str, object], list[str]]:
    smallest: float | None = None
    # Without concessions: only the first (none), the batch shape at the same per-GPU batch.
    tries = _relaxations(cfg) if relax else iter([next(_relaxations(cfg))])
    for relaxed, why in tries:
        found = _best_batch(cfg, relaxed, shape, budget, strategy)
        if isinstance(found, dict):
            proposed = {k: v for k, v in {**relaxed, **found}.items() if k != "_eff"}
            changes = {k: v for k, v in proposed.items() if _current(cfg, k) != v}
            if changes.get("train.gradient_checkpointing") is True:
                why = [*why, "gradient checkpointing on: about 20-30% slower, far less activation memory"]
            return changes, why
        smallest = found
    where = f"stage {stage}: " if stage else ""
    hint = ("set quantization.mode = '4bit' (QLoRA), " if cfg.quantization.mode == "none" else "") + (
        "pick a smaller model or a lower lora.rank, or use a GPU with more memory")  # fmt: skip
    if strategy in ("ddp", "deepspeed-zero2"):
        hint += "; or shard the model across the GPUs: distributed.strategy = 'fsdp'"
    elif strategy != "single":
        hint += f"; or use more GPUs (now {cfg.distributed.gpus})"
    per_gpu = f" per GPU ({cfg.distributed.gpus} GPUs, {strategy})" if strategy != "single" else ""
    raise FitError(
        f"{where}{cfg.model.name_or_path} ({cfg.train.technique}) does not fit in {gpu:g} GiB{per_gpu} with a margin, even at "
        f"micro-batch 1 with checkpointing and the shortest settings tried: needs {smallest or 0:.1f} GiB",
        hint=hint,
    )


def _relaxations(cfg: RunConfig) -> Iterator[tuple[dict[str, object], list[str]]]:
    """Ever stronger concessions, each with its reasons, starting with none."""
    grpo, gpus, name = cfg.group_sampling, cfg.distributed.gpus, cfg.train.technique  # GRPO's or RLOO's groups
    eff = _per_gpu_batch(cfg)
    yield {"_eff": eff}, []
    if grpo is None:
        length = cfg.train.max_length // 2
        while length >= MIN_MAX_LENGTH:
            yield {"_eff": eff, "train.max_length": length}, [f"max_length {length}: longer rows are truncated"]
            length //= 2
        return
    gens, steps = grpo.num_generations, eff // grpo.num_generations
    done: dict[str, object] = {"_eff": eff}
    while steps > 1:  # fewer prompts per optimizer step: the generation batch shrinks with it
        steps //= 2
        done = {"_eff": steps * gens}
        yield done, [f"{steps * gpus} prompt(s) per step instead of {eff * gpus // gens}: a noisier gradient"]
    kept = int(done["_eff"])  # type: ignore[call-overload]
    why = [f"{eff // kept}x fewer prompts per step"] if kept != eff else []
    length = grpo.max_completion_length // 2
    while length >= MIN_COMPLETION:
        done = {**done, f"{name}.max_completion_length": length}
        yield done, [*why, f"completions cut at {length} tokens"]
        length //= 2
    for fewer in (6, MIN_GENERATIONS):
        if fewer < gens:
            yield {**done, f"{name}.num_generations": fewer, "_eff": fewer}, [
                *why, f"{fewer} completions per prompt: a coarser baseline"]  # fmt: skip


def _per_gpu_batch(cfg: RunConfig) -> int:
    """What each GPU sums per optimizer step: kept, it keeps the effective batch (x distributed.gpus) too."""
    return cfg.train.micro_batch_size * cfg.train.grad_accum


def _best_batch(
    cfg: RunConfig, relaxed: dict[str, object], shape: ModelShape, budget: float, strategy: str
) -> dict[str, object] | float:
    """The largest micro-batch (dividing the per-GPU batch) that fits, or the smallest need seen."""
    eff = int(relaxed["_eff"])  # type: ignore[call-overload]
    checkpointing = [True] if cfg.train.gradient_checkpointing else [False, True]
    smallest = float("inf")
    for ckpt in checkpointing:
        for mb in sorted((d for d in range(1, eff + 1) if eff % d == 0), reverse=True):
            candidate = {BATCH[0]: mb, BATCH[1]: eff // mb, BATCH[2]: ckpt}
            stage = _apply(cfg, {**{k: v for k, v in relaxed.items() if k != "_eff"}, **candidate})
            need = estimate_stage(stage, shape, None, strategy).total_gb
            if need <= budget:
                return candidate
            smallest = min(smallest, need)
    return smallest


def _current(cfg: RunConfig, dotted: str) -> object:
    section, key = dotted.split(".")
    return getattr(getattr(cfg, section), key)


def _apply(cfg: RunConfig, changes: dict[str, object]) -> RunConfig:
    """A single-stage config with dotted keys changed. Copies without re-validating: the search only
    makes valid changes (the effective batch stays a multiple of num_generations)."""
    sections: dict[str, dict[str, object]] = {}
    for dotted, value in changes.items():
        section, key = dotted.split(".")
        sections.setdefault(section, {})[key] = value
    update = {name: getattr(cfg, name).model_copy(update=values) for name, values in sections.items()}
    return cfg.model_copy(update=update)


def _apply_to_preset(cfg: RunConfig, overrides: dict[str, object]) -> RunConfig:
    """The whole preset (pipeline stages included) with the proposal applied, as `--set` would."""
    raw = cfg.model_dump(mode="json", exclude_unset=True)
    apply_overrides(raw, [f"{key}={json.dumps(value)}" for key, value in overrides.items()])
    return validate_config(raw, source="smoltrain fit")
