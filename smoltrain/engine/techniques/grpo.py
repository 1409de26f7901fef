"""GRPO: online RL without a value model, through TRL's GRPOTrainer.

For each prompt the model samples `num_generations` completions; the reward functions score
them and completions above their group's mean are pushed up. Each reward function's mean is
logged as `rewards/<name>/mean`; after every logged step the best and worst completions are
emitted as `sample` events with their rewards.

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine.callbacks import SampleCallback
from smoltrain.engine.data import PreparedData
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.common import StageContext, training_kwargs
from smoltrain.engine.techniques.rewards import build_reward_functions

FACTS = facts("grpo")


def describe(cfg: RunConfig, data: PreparedData) -> dict[str, str]:
    names = ", ".join(f"{r.name} x{r.weight:g}" for r in cfg.grpo.rewards)
    return {"loss_on": f"GRPO ({cfg.grpo.loss_type}) on rewards: {names}"}


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import GRPOConfig, GRPOTrainer

    rewards = build_reward_functions(cfg.grpo.rewards, resolve_model=ctx.resolve_model, device=loaded.device,
                                     emit=ctx.emit)  # fmt: skip
    kwargs = training_kwargs(cfg, loaded, ctx, has_eval=data.eval is not None)
    # Every prompt's group must sit in one eval batch too.
    kwargs["per_device_eval_batch_size"] = cfg.grpo.num_generations
    args = GRPOConfig(
        **kwargs,
        num_generations=cfg.grpo.num_generations,
        max_completion_length=cfg.grpo.max_completion_length,
        temperature=cfg.grpo.temperature,
        beta=cfg.grpo.beta,
        epsilon=cfg.grpo.epsilon,
        loss_type=cfg.grpo.loss_type,
        reward_weights=rewards.weights,
    )
    return GRPOTrainer(
        model=loaded.model,
        reward_funcs=rewards.functions,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=loaded.tokenizer,
        callbacks=[*ctx.callbacks, SampleCallback(ctx.emit, rewards, stage=ctx.stage)],
    )
