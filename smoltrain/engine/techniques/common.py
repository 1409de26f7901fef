"""What every technique's TRL config shares: the [train] section turned into TrainingArguments kwargs.

Each technique module builds its own TRL config class from `training_kwargs(...)` plus its own
options, so the train section means the same thing for SFT, reward modelling, DPO, KTO and GRPO.
DPO and KTO also share how their trainer is given the model, its reference and the data
(`with_reference_adapters_off`); GRPO and RLOO their sampling, rewards and sample log (`group_sampling_kwargs`).

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from smoltrain.config.schema import RunConfig
from smoltrain.engine.callbacks import SampleCallback
from smoltrain.engine.data import PreparedData
from smoltrain.engine.events import Emit
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.rewards import build_reward_functions


@dataclass
class StageContext:
    """What a technique needs from the run around it, besides the config, model and data."""

    output_dir: Path  # checkpoints go here
    tracking: dict[str, Any]  # TrainingArguments for [logging]'s trackers (engine/trackers.py)
    distributing: dict[str, Any]  # TrainingArguments for more than one process (engine/distributed.py)
    callbacks: list[Any]
    emit: Emit
    stage: int
    resolve_model: Callable[[str], Path]  # an earlier stage's name or a run folder -> a trained model's folder


def resolve_optimizer(setting: str, device: str) -> str:
    if setting != "auto":
        return setting
    # Paged 8-bit AdamW halves optimizer memory and survives spikes by paging to CPU; bitsandbytes'
    # 8-bit optimizers are CUDA-first, so the CPU path keeps plain AdamW.
    return "paged_adamw_8bit" if device == "cuda" else "adamw_torch"


def training_kwargs(cfg: RunConfig, loaded: LoadedModel, ctx: StageContext, has_eval: bool) -> dict[str, Any]:
    train = cfg.train
    on_gpu = loaded.device == "cuda"
    return {
        "output_dir": str(ctx.output_dir),
        "max_steps": train.max_steps or -1,
        "num_train_epochs": train.epochs,
        "learning_rate": train.learning_rate,
        "lr_scheduler_type": train.lr_scheduler,
        "warmup_steps": train.warmup_ratio,  # a float in [0, 1) is a ratio of the total steps
        "weight_decay": train.weight_decay,
        "max_grad_norm": train.max_grad_norm,
        "per_device_train_batch_size": train.micro_batch_size,
        "per_device_eval_batch_size": train.micro_batch_size,
        "gradient_accumulation_steps": train.grad_accum,
        "seed": train.seed,
        "data_seed": train.seed,
        # Unsloth sets up its own (offloaded) checkpointing when it wraps the model.
        "activation_checkpointing": train.gradient_checkpointing and loaded.backend == "hf",
        "activation_checkpointing_kwargs": {"use_reentrant": False},
        "bf16": on_gpu and loaded.dtype == torch.bfloat16,
        "fp16": on_gpu and loaded.dtype == torch.float16,
        "use_cpu": not on_gpu,
        "optim": resolve_optimizer(train.optimizer, loaded.device),
        "logging_steps": train.logging_steps,
        "logging_first_step": True,
        "eval_strategy": "steps" if has_eval else "no",
        "eval_steps": train.eval_steps,
        "eval_on_start": has_eval,  # the first eval is the baseline the user compares against
        "save_strategy": "steps",
        "save_steps": train.save_steps,
        # Rotation is EventCallback's, after a checkpoint is marked complete (see checkpoints.py).
        "save_total_limit": None,
        **ctx.tracking,  # report_to ("none" unless [logging] asks), run_name, project
        **ctx.distributing,  # DDP, FSDP or DeepSpeed settings; nothing for one process
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "non_padding",
    }


def with_reference_adapters_off(loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> dict[str, Any]:
    """The trainer arguments, besides `args`, of a technique that scores the policy against a reference
    (DPO, KTO): the reference is the same PEFT model with its adapters disabled, no second copy."""
    return {
        "model": loaded.model,
        "ref_model": None,  # a PEFT model: TRL uses it with adapters disabled as the reference
        "train_dataset": data.train,
        "eval_dataset": data.eval,
        "processing_class": loaded.tokenizer,
        "callbacks": ctx.callbacks,
    }


def group_sampling_kwargs(cfg: RunConfig, loaded: LoadedModel, data: PreparedData,
                          ctx: StageContext) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """What GRPO and RLOO share (their [grpo] / [rloo] section, RunConfig.group_sampling): the TRL config's
    kwargs (training, sampling, reward weights) and the trainer's (model, rewards, data, callbacks, with the
    SampleCallback that shows the best and worst completion). Each adds its own options."""
    section, name = cfg.group_sampling, cfg.train.technique
    assert section is not None, f"{name} samples no groups"
    rewards = build_reward_functions(section.rewards, resolve_model=ctx.resolve_model, device=loaded.device,
                                     emit=ctx.emit, key=f"{name}.rewards")  # fmt: skip
    args = training_kwargs(cfg, loaded, ctx, has_eval=data.eval is not None)
    # Every prompt's group must sit in one eval batch too.
    args["per_device_eval_batch_size"] = section.num_generations
    args.update(num_generations=section.num_generations, max_completion_length=section.max_completion_length,
                temperature=section.temperature, beta=section.beta, reward_weights=rewards.weights)  # fmt: skip
    trainer = {
        "model": loaded.model,
        "reward_funcs": rewards.functions,
        "train_dataset": data.train,
        "eval_dataset": data.eval,
        "processing_class": loaded.tokenizer,
        "callbacks": [*ctx.callbacks, SampleCallback(ctx.emit, rewards, stage=ctx.stage)],
    }
    return args, trainer


def rewards_in_words(cfg: RunConfig) -> str:
    """The rewards a GRPO or RLOO stage scores with, for run_started: "math_answer x1, reward_model x0.05"."""
    return ", ".join(f"{r.name} x{r.weight:g}" for r in cfg.technique_rewards)
