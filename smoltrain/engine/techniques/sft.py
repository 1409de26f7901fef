"""SFT: supervised fine-tuning on good answers, through TRL's SFTTrainer.

By default the loss is on the assistant turns (chat data) or the completion (prompt/completion
data) only, as practitioners do; plain text trains on every token. Optional packing.

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.engine.data import PreparedData
from smoltrain.engine.model import LoadedModel
from smoltrain.engine.techniques.common import StageContext, training_kwargs
from smoltrain.errors import ModelError


def loss_target(cfg: RunConfig, data: PreparedData) -> str:
    """Which tokens the loss is computed on, in words, for the run_started event."""
    if cfg.sft.loss_on == "all":
        return "all tokens (sft.loss_on = all)"
    if data.trl_format == "messages":
        return "assistant turns only"
    if data.trl_format == "prompt_completion":
        return "completions only"
    return "all tokens (plain text has no completion to single out)"


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import SFTConfig, SFTTrainer

    if data.trl_format == "messages" and not getattr(loaded.tokenizer, "chat_template", None):
        raise ModelError(
            f"model {cfg.model.name_or_path!r} has no chat template, and the dataset is chat messages",
            hint="use an instruct model, or a prompt/completion or text dataset (data.format)",
        )
    completion_only = cfg.sft.loss_on == "completion"
    args = SFTConfig(
        **training_kwargs(cfg, loaded, ctx.output_dir, has_eval=data.eval is not None),
        max_length=cfg.train.max_length,
        packing=cfg.sft.packing,
        assistant_only_loss=completion_only and data.trl_format == "messages",
        completion_only_loss=completion_only and data.trl_format == "prompt_completion",
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
