"""Reward model: learn to score answers from preference pairs, through TRL's RewardTrainer.

The model is the (4-bit) base with a fresh one-logit classification head, trained in full, and
LoRA adapters on the body (see model.py). The loss pushes the chosen answer's score above the
rejected one's; `eval_accuracy` is the share of held-out pairs ranked right. The saved folder
(adapter + head) can score completions as a GRPO reward (`name = "reward_model"`).

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine.data import PreparedData
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.common import StageContext, training_kwargs

FACTS = facts("reward")


def describe(cfg: RunConfig, data: PreparedData) -> dict[str, str]:
    return {"loss_on": "pairwise: chosen scored above rejected"}


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import RewardConfig, RewardTrainer

    args = RewardConfig(
        **training_kwargs(cfg, loaded, ctx, has_eval=data.eval is not None),
        max_length=cfg.train.max_length,
        center_rewards_coefficient=cfg.reward.center_rewards_coefficient,
    )
    trainer = RewardTrainer(
        model=loaded.model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=loaded.tokenizer,
        callbacks=ctx.callbacks,
    )
    _keep_head_in_float32(trainer.model)
    return trainer


def _keep_head_in_float32(model: Any) -> None:
    """TRL casts every trainable parameter of a 4-bit model to bfloat16, the new score head included.
    LoRA layers cast their input to match, a plain Linear head does not: in a float32 run (CPU) the
    head then fails, and under bf16 autocast a float32 head is simply more precise. It is tiny."""
    for name, param in model.named_parameters():
        if param.requires_grad and "modules_to_save" in name:
            param.data = param.data.float()
