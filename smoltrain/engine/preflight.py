"""Before the real run: is every row still trainable, and does the worst batch fit in memory?

`check_rows` compares the rows TRL kept after tokenizing with the rows smoltrain handed it: TRL
silently drops rows whose labels are all masked (the answer lies beyond train.max_length) or that
are too long, and an empty split would otherwise fail deep inside the trainer, or train on nothing.

`preflight` runs one forward and backward pass on the longest micro-batch of the training data, with
activation checkpointing on as training will have it
(for GRPO: first one generation of the whole generation batch at the full completion length), so
running out of GPU memory shows in the first seconds, not an hour in when a long row comes up.
Its gradients are thrown away and TRL's metric accumulators restored, so the run's first logged
step is what it would have been without it.

`out_of_memory_error` turns a CUDA OOM into the FitError the user sees: where it happened, the
memory model's estimate, and a fit suggestion (smoltrain.memory, imported lazily; a generic hint
when it is missing or fails).

`check_disk_space` warns before training when the run folder's disk cannot hold the checkpoints,
adapters and merged models the run will write.

Runs in the worker. Imports torch; never textual.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch

from smoltrain.config.schema import RunConfig
from smoltrain.engine.events import Emit, Warning
from smoltrain.errors import DataError, FitError, SmoltrainError

_GENERIC_FIT_HINT = (
    "set train.auto_fit = true to retry with a smaller micro-batch automatically, or lower train.micro_batch_size "
    "(raise train.grad_accum to keep the batch), lower train.max_length, or use quantization.mode = '4bit'"
)


def check_rows(trainer: Any, handed: int, handed_eval: int, cfg: RunConfig, emit: Emit) -> None:
    """DataError if TRL kept no training (or eval) row; a warning if it dropped some."""
    kept = len(trainer.train_dataset)
    why = f"nothing left to learn after truncating to train.max_length = {cfg.train.max_length}: every label is masked"
    hint = "raise train.max_length, shorten the prompts, or set sft.loss_on = 'all'"
    if kept == 0:
        raise DataError(f"{_source(cfg)}: all {handed} training rows dropped ({why})", hint=hint)
    eval_ds = getattr(trainer, "eval_dataset", None)
    if handed_eval and eval_ds is not None and not isinstance(eval_ds, dict) and len(eval_ds) == 0:
        raise DataError(f"{_source(cfg)}: all {handed_eval} eval rows dropped ({why})", hint=hint)
    if kept < handed:
        emit(Warning(message=f"{handed - kept} of {handed} training rows dropped when tokenizing ({why} in them)",
                     hint=hint))  # fmt: skip


def _source(cfg: RunConfig) -> str:
    return (cfg.data.path or f"what {cfg.data.curated} kept") if cfg.data else "data"


def gpu_memory_gb() -> float | None:
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / 2**30


def preflight(trainer: Any, cfg: RunConfig) -> None:
    """One forward and backward pass on the longest micro-batch (GRPO: a full-length generation first)."""
    model = trainer.model
    saved_metrics = copy.deepcopy(getattr(trainer, "_metrics", None))
    was_training = model.training
    _checkpointing_as_in_training(trainer)
    try:
        if cfg.group_sampling is not None or cfg.train.technique == "distill":  # GRPO, RLOO, distillation
            _generation_pass(trainer, cfg)
        else:
            model.train()
            batch = _longest_batch(trainer, cfg.train.micro_batch_size)
            with trainer.compute_loss_context_manager():
                loss = trainer.compute_loss(model, batch)
            loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        if saved_metrics is not None:
            trainer._metrics = saved_metrics
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _checkpointing_as_in_training(trainer: Any) -> None:
    """The Trainer turns activation checkpointing on only inside train(); a pass before it keeps every layer's
    activations, far more than training will (an 8B model at 2048 tokens: ~14 GiB against ~1), and reports
    an out-of-memory the run would never have. So it is turned on here the way train() does (train() repeats it)."""
    args, model = trainer.args, trainer.model
    if not getattr(args, "activation_checkpointing", False) or not hasattr(model, "activation_checkpointing_enable"):
        return
    kwargs = dict(args.activation_checkpointing_kwargs or {})
    every_n_layers, offload = kwargs.pop("every_n_layers", 1), kwargs.pop("offload", False)
    model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs or None, every_n_layers=every_n_layers,
                                          offload=offload)  # fmt: skip


def _row_length(row: dict[str, Any]) -> int:
    # input_ids (SFT); prompt_ids + chosen_ids + rejected_ids (DPO); chosen_ids + rejected_ids (reward).
    return sum(len(v) for k, v in row.items() if k.endswith("ids") and isinstance(v, list))


def _longest_indices(dataset: Any, count: int) -> list[int]:
    id_columns = [c for c in dataset.column_names if c.endswith("ids")]
    lengths = [_row_length(row) for row in dataset.select_columns(id_columns)] if id_columns else [0] * len(dataset)
    return sorted(range(len(lengths)), key=lambda i: -lengths[i])[:count]


def _longest_batch(trainer: Any, size: int) -> dict[str, Any]:
    """The longest rows, collated by the trainer's own dataloader (its collator, column removal, device)."""
    full = trainer.train_dataset
    trainer.train_dataset = full.select(_longest_indices(full, size))
    try:
        batch = next(iter(trainer.get_train_dataloader()))
    finally:
        trainer.train_dataset = full
    device = next(p.device for p in trainer.model.parameters())
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _generation_pass(trainer: Any, cfg: RunConfig) -> None:
    """GRPO's and RLOO's (and distillation's) peaks: sampling the whole generation batch at full length, then one backward on
    a micro-batch (distillation: through its own loss, so the teacher's forward is in it)."""
    tokenizer = trainer.processing_class
    prompts = [row["prompt"] for row in trainer.train_dataset]
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) if isinstance(p, list) else p
             for p in prompts]  # fmt: skip
    longest = max(texts, key=lambda t: len(tokenizer(t)["input_ids"]))
    n = getattr(trainer.args, "generation_batch_size", None) or cfg.train.micro_batch_size * cfg.train.grad_accum
    device = next(p.device for p in trainer.model.parameters())
    prompt_ids = tokenizer([longest] * n, return_tensors="pt")["input_ids"].to(device)
    length = (cfg.group_sampling or cfg.distill).max_completion_length
    model = trainer.model
    model.eval()
    with torch.no_grad():
        sequences = model.generate(input_ids=prompt_ids, attention_mask=torch.ones_like(prompt_ids),
                                   max_new_tokens=length, min_new_tokens=length, do_sample=True,
                                   pad_token_id=tokenizer.pad_token_id, use_cache=True)  # fmt: skip
    model.train()
    batch = sequences[: cfg.train.micro_batch_size]
    if cfg.train.technique == "distill":
        split, ones = prompt_ids.shape[1], torch.ones_like(batch)
        inputs = {"prompt_ids": batch[:, :split], "prompt_mask": ones[:, :split], "completion_ids": batch[:, split:],
                  "completion_mask": ones[:, split:]}  # fmt: skip
        with trainer.compute_loss_context_manager():
            trainer.compute_loss(model, inputs).backward()
        return
    model(input_ids=batch, labels=batch).loss.backward()


def out_of_memory_error(cfg: RunConfig, where: str) -> FitError:
    """What the user reads after a CUDA OOM: where, the estimate, and what would fit."""
    train = cfg.train
    message = (f"out of GPU memory {where} (micro_batch_size {train.micro_batch_size}, max_length "
               f"{train.max_length}, quantization {cfg.quantization.mode})")  # fmt: skip
    hint = _GENERIC_FIT_HINT
    gpu = gpu_memory_gb()
    if gpu is not None:
        try:
            from smoltrain import (
                memory,  # advice only: any failure below falls back to the generic hint
            )

            estimate = memory.estimate(cfg, gpu)
            message += f"; estimated {estimate.total_gb:.1f} GiB of {gpu:.1f} GiB"
            proposal = memory.fit(cfg, gpu)
            sets = " ".join(f"--set {k}={v}" for k, v in proposal.overrides.items())
            hint = f"{proposal.explain()}{' (' + sets + ')' if sets else ''}; or set train.auto_fit = true"
        except Exception:  # noqa: BLE001 - the memory model is advice; the OOM message must still come out
            pass
    return FitError(message, hint=hint)


def halved_batch(cfg: RunConfig) -> RunConfig | None:
    """The same effective batch with half the micro-batch, or None at micro_batch_size 1."""
    train = cfg.train
    if train.micro_batch_size <= 1:
        return None
    micro = train.micro_batch_size // 2
    accum = train.grad_accum * train.micro_batch_size // micro  # exact for even sizes; odd ones round the batch up
    return cfg.model_copy(update={"train": train.model_copy(update={"micro_batch_size": micro, "grad_accum": accum})})


def disk_needed(cfg: RunConfig, trainable: int, total: int, optimizer: str) -> int:
    """Bytes the run will write: the checkpoints kept at once (plus the one being written before the
    oldest is rotated out: adapter + optimizer state), the final adapter, and a 16-bit merged model for
    every policy stage that hands over to a later one."""
    from smoltrain.config.load import stage_configs
    from smoltrain.config.techniques import facts

    stages = stage_configs(cfg)
    optimizer_bytes = 2 if "8bit" in optimizer else 8  # Adam's two moments, 8-bit or float32
    checkpoint = trainable * (4 + optimizer_bytes)
    merges = sum(1 for _, s in stages[:-1] if facts(s.train.technique).policy)
    per_stage = checkpoint * (cfg.train.save_total_limit + 1) + trainable * 4
    return per_stage * len(stages) + merges * total * 2


def check_disk_space(run_dir: Path, cfg: RunConfig, loaded: Any, emit: Emit) -> None:
    """A warning, before training, when the run folder's disk cannot hold what the run will write."""
    from smoltrain.engine.techniques.common import resolve_optimizer
    from smoltrain.memory.shapes import ModelShape
    from smoltrain.rundir import format_bytes, free_bytes

    try:
        total = ModelShape.from_config(loaded.model.config.to_dict()).total_params
    except (SmoltrainError, KeyError, TypeError, ValueError):  # an architecture the memory model does not read
        total = loaded.total_params
    optimizer = resolve_optimizer(cfg.train.optimizer, loaded.device)
    needed, free = disk_needed(cfg, loaded.trainable_params, total, optimizer), free_bytes(run_dir)
    if free < needed:
        emit(Warning(message=f"the disk holding {run_dir} has {format_bytes(free)} free; this run will write about "
                             f"{format_bytes(needed)} (checkpoints, adapters{', merged models' if cfg.stages else ''})",
                     hint="free some space, or lower train.save_total_limit; a full disk stops the run (it can be "
                          "resumed once space is freed)"))  # fmt: skip
