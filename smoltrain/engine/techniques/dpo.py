"""DPO: prefer the chosen answer over the rejected one, directly, through TRL's DPOTrainer.

With LoRA the reference model is the same weights with the adapters switched off: no second copy
of the model in memory. In a pipeline that is the previous stage's merged result, which is what
DPO should stay close to. `precompute_ref_log_probs` scores the data with the reference once, up
front, to save a forward pass per step.

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine.data import PreparedData
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.common import StageContext, training_kwargs, with_reference_adapters_off

FACTS = facts("dpo")


def describe(cfg: RunConfig, data: PreparedData) -> dict[str, str]:
    return {"loss_on": f"DPO {cfg.dpo.loss_type}, beta {cfg.dpo.beta:g}, reference: adapters off"}


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(
        **training_kwargs(cfg, loaded, ctx, has_eval=data.eval is not None),
        max_length=cfg.train.max_length,
        beta=cfg.dpo.beta,
        loss_type=[cfg.dpo.loss_type],
        label_smoothing=cfg.dpo.label_smoothing,
        precompute_ref_log_probs=cfg.dpo.precompute_ref_log_probs,
    )
    return DPOTrainer(args=args, **with_reference_adapters_off(loaded, data, ctx))
