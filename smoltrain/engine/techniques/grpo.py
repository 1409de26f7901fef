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
from smoltrain.engine.data import PreparedData
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.common import StageContext, group_sampling_kwargs, rewards_in_words

FACTS = facts("grpo")


def describe(cfg: RunConfig, data: PreparedData) -> dict[str, str]:
    return {"loss_on": f"GRPO ({cfg.grpo.loss_type}) on rewards: {rewards_in_words(cfg)}"}


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import GRPOConfig, GRPOTrainer

    args, trainer = group_sampling_kwargs(cfg, loaded, data, ctx)
    return GRPOTrainer(args=GRPOConfig(**args, epsilon=cfg.grpo.epsilon, loss_type=cfg.grpo.loss_type), **trainer)
