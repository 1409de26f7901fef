"""The interface every technique module (sft.py, reward.py, dpo.py, kto.py, grpo.py) implements, so
the run loop asks a technique what it is instead of comparing names.

A technique is a module, read like its siblings (TRL's rule: consistency over cleverness):
`FACTS` (smoltrain.config.techniques: is it a policy stage, which model class, which metrics tell
its progress), `describe` (what it really trains, for run_started) and `build_trainer` (the TRL
trainer for one stage). mypy checks each module against this Protocol (engine/run.py's TECHNIQUES).

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from smoltrain.config.techniques import TechniqueFacts

if TYPE_CHECKING:
    from smoltrain.config.schema import RunConfig
    from smoltrain.engine.data import PreparedData
    from smoltrain.engine.model import LoadedModel
    from smoltrain.engine.techniques.common import StageContext


class Technique(Protocol):
    FACTS: TechniqueFacts

    def describe(self, cfg: RunConfig, data: PreparedData) -> dict[str, str]:
        """What this stage trains on, in words: run_started's `active` entries (loss_on, text, ...)."""
        ...

    def build_trainer(self, cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
        """The TRL trainer of one stage, with ctx.callbacks attached; not yet trained."""
        ...
