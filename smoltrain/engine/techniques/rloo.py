"""RLOO: REINFORCE with a leave-one-out baseline, through TRL's RLOOTrainer.

For each prompt the model samples `num_generations` completions; the reward functions (verifiable
rewards and/or a trained reward model, [[rloo.rewards]]) score them, and each completion's advantage
is its reward minus the mean reward of the *other* completions of its prompt. That baseline replaces
PPO's value model, so only the policy (with its reward model, and the reference as the same weights
with adapters off) is in memory. The KL penalty `rloo.beta` is taken off each completion's reward
(summed over its tokens) before the baseline, as in the RLOO paper; TRL logs the rewards before the
penalty (`reward`, `rewards/<fn>/mean`) and the penalty's per-token mean (`kl`). After every logged
step the best and worst completions are emitted as `sample` events, as in GRPO.

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine.data import PreparedData
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.common import StageContext, group_sampling_kwargs, rewards_in_words

FACTS = facts("rloo")


def describe(cfg: RunConfig, data: PreparedData) -> dict[str, str]:
    r = cfg.rloo
    kl = f"KL beta {r.beta:g} to the reference (adapters off)" if r.beta else "no KL penalty"
    return {"loss_on": f"RLOO (baseline: the other {r.num_generations - 1} samples' mean) on rewards: "
                       f"{rewards_in_words(cfg)}; {kl}"}  # fmt: skip


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import RLOOConfig, RLOOTrainer

    args, trainer = group_sampling_kwargs(cfg, loaded, data, ctx)
    return RLOOTrainer(args=RLOOConfig(**args), **trainer)
