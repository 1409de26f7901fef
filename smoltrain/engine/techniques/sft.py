"""SFT: supervised fine-tuning on good answers, through TRL's SFTTrainer.

By default the loss is on the assistant turns (chat data) or the completion (prompt/completion
data) only, as practitioners do; plain text trains on every token. Optional packing.

The rows arrive tokenized, with the trained tokens marked (data/template_step.py, through the one
assistant mask of data/chat_template.py), so TRL only builds the labels from that mask, truncates
to max_length and drops rows left with nothing to learn. TRL's own `assistant_only_loss` is not
used: it needs `{% generation %}` markers, which most real templates lack.

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine.data import PreparedData
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.common import StageContext, training_kwargs

FACTS = facts("sft")


def describe(cfg: RunConfig, data: PreparedData) -> dict[str, str]:
    """Which tokens the loss is on, and how the rows reach the model, in words for run_started."""
    described = {"loss_on": _loss_target(cfg, data)}
    if data.text_format == "chat template" and data.mask_source:
        described["text"] = f"chat template (mask from {data.mask_source})"
    elif data.text_format is not None:
        described["text"] = data.text_format
    return described


def _loss_target(cfg: RunConfig, data: PreparedData) -> str:
    if cfg.sft.loss_on == "all":
        return "all tokens (sft.loss_on = all)"
    if data.trl_format == "messages":
        return "assistant turns only"
    if data.trl_format == "prompt_completion":
        return "completions only"
    return "all tokens (plain text has no completion to single out)"


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import SFTConfig, SFTTrainer

    args = SFTConfig(
        **training_kwargs(cfg, loaded, ctx, has_eval=data.eval is not None),
        max_length=cfg.train.max_length,
        packing=cfg.sft.packing,
        # The rows' assistant_masks already say what is trained (see the module docstring).
        assistant_only_loss=False,
        completion_only_loss=False,
        dataset_text_field="text",
    )
    return SFTTrainer(
        model=loaded.model,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=loaded.tokenizer,
        callbacks=ctx.callbacks,
    )
