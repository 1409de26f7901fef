"""KTO: learn from single answers labelled desirable or not (thumbs up/down), through TRL's KTOTrainer.

No pairs are needed: each row is a prompt, one completion and a boolean label. The loss raises the
implicit reward beta * log(pi / ref) of desirable answers above a KL baseline and pushes undesirable
ones below it; TRL estimates that baseline from a "KL batch" (each prompt with another row's
completion from the same micro-batch), so a micro-batch of 1 leaves it no mismatched pairs to use.
As in DPO, the reference is the same weights with the adapters switched off (in a pipeline: the
previous stage's merged result). Preference pairs given to KTO arrive here already unpaired
(data/convert_preference.py): chosen as desirable, rejected as undesirable.

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine.data import PreparedData
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.common import StageContext, training_kwargs, with_reference_adapters_off

FACTS = facts("kto")


def describe(cfg: RunConfig, data: PreparedData) -> dict[str, str]:
    k = cfg.kto
    return {
        "loss_on": f"KTO, beta {k.beta:g}, weights desirable {k.desirable_weight:g} / undesirable "
        f"{k.undesirable_weight:g}, reference: adapters off"
    }


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import KTOConfig, KTOTrainer

    args = KTOConfig(
        **training_kwargs(cfg, loaded, ctx, has_eval=data.eval is not None),
        max_length=cfg.train.max_length,
        beta=cfg.kto.beta,
        desirable_weight=cfg.kto.desirable_weight,
        undesirable_weight=cfg.kto.undesirable_weight,
    )
    return KTOTrainer(args=args, **with_reference_adapters_off(loaded, data, ctx))
