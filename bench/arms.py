"""The arms: the script a user would copy from TRL's documentation (A, A0) and smoltrain itself (B, C).

Every arm gets the same model folder, dataset file, sequence length, batch, steps and (GRPO)
generations; what differs is only what each side chooses by itself. Both train with
`Meter` attached (bench/meter.py), the same way.

A is TRL 1.16's documented QLoRA recipe (docs/source/peft_integration.md, "QLoRA"), with TRL's
own defaults for everything the recipe leaves out:
- BitsAndBytesConfig(load_in_4bit, nf4, bf16 compute, double quant), `device_map="auto"`, no
  dtype given (transformers 5 loads the checkpoint's dtype);
- LoraConfig(r=32, lora_alpha=16, lora_dropout=0.05, bias="none") with no target_modules, so
  PEFT's per-architecture default applies (q_proj and v_proj for Llama and Qwen): fewer adapter
  FLOPs than smoltrain's all-linear r=16, which favours A;
- SFTConfig/DPOConfig/RewardConfig/GRPOConfig defaults: gradient checkpointing on (TRL's
  _BaseConfig default; transformers' own default is off), bf16 on, optimizer adamw_torch_fused,
  learning rate as the recipe's table for LoRA (SFT 2e-4, DPO 5e-6, GRPO 1e-5; reward: 2e-4);
- the GRPO reward is TRL's quickstart `reward_len`; smoltrain's nearest built-in is `length`.
Harness settings common to all arms (not a choice of either side): max_steps, batch,
gradient_accumulation_steps=1, max_length (= seq_len), GRPO's num_generations and
max_completion_length, logging every step (the meter reads GRPO's logs), no checkpoints.
A0 is A with `activation_checkpointing=False` (the current name of gradient_checkpointing).

B is smoltrain's own engine, unchanged: a RunConfig with smoltrain's defaults plus the harness
settings goes through `smoltrain.engine.run.run` (data preparation, model loading with 4-bit,
LoRA, Liger and checkpointing, the technique's trainer, the float32-adapter fix on CPU). The only
addition is the meter, attached by wrapping the technique's `build_trainer` for this process.
B pins `train.backend = "hf"` so that B and C differ by Unsloth alone; C sets "unsloth".
What B and C report as active is the run's own run_started event: its `active` dict, device and dtype.

The arms run inside the arm process only (torch, transformers, TRL, PEFT, smoltrain.engine, all
imported inside the functions); importing this module costs pydantic alone, so the GPU check's parent
can build an arm's RunConfig (`smoltrain_config`) for `smoltrain estimate` without the ML stack.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from bench.launch import ArmSpec

if TYPE_CHECKING:
    from bench.meter import Meter

# TRL docs, "Learning Rate Considerations": LoRA rates per trainer.
TRL_DOCS_LORA_LR = {"sft": 2.0e-4, "reward": 2.0e-4, "dpo": 5.0e-6, "grpo": 1.0e-5}
LENGTH_TARGET = 20  # characters, in TRL's quickstart reward_len and smoltrain's length reward alike


def reward_len(completions: list[Any], **kwargs: Any) -> list[float]:
    """TRL's quickstart reward: completions near 20 characters score best."""
    return [-abs(LENGTH_TARGET - len(str(c))) for c in completions]


def run_trl_docs(spec: ArmSpec, meter: Meter) -> dict[str, Any]:
    """Arms A and A0: the TRL-documented QLoRA script, trained with the meter attached."""
    import torch

    from bench.meter import instrument
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
        BitsAndBytesConfig,
    )

    technique = spec.work.technique
    bnb_config = BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16, bnb_4bit_use_double_quant=True
    )
    tokenizer = AutoTokenizer.from_pretrained(spec.model_dir)
    auto = AutoModelForSequenceClassification if technique == "reward" else AutoModelForCausalLM
    extra = {"num_labels": 1} if technique == "reward" else {}
    model = auto.from_pretrained(spec.model_dir, quantization_config=bnb_config, device_map="auto", **extra)
    peft_config = LoraConfig(r=32, lora_alpha=16, lora_dropout=0.05, bias="none",
                             task_type="SEQ_CLS" if technique == "reward" else "CAUSAL_LM")  # fmt: skip
    dataset = load_dataset("json", data_files=spec.data_path, split="train")
    args = _trl_config(spec, checkpointing=spec.arm == "A")
    trainer = _trl_trainer(technique, model, args, dataset, tokenizer, peft_config)
    instrument(trainer, meter, tokenizer.pad_token_id)
    trainer.train()
    return {
        "4bit": "on (nf4, double quant, bf16 compute)",
        "lora": "r=32, alpha=16 on PEFT's default targets",
        "checkpointing": "on (TRL default)" if args.activation_checkpointing else "off",
        "optimizer": str(args.optim.value if hasattr(args.optim, "value") else args.optim),
        "liger": "off (TRL default)",
    }


def _trl_config(spec: ArmSpec, checkpointing: bool) -> Any:
    import torch
    import trl

    work, technique = spec.work, spec.work.technique
    common: dict[str, Any] = {
        "output_dir": str(Path(spec.scratch_dir) / "out"),
        "learning_rate": TRL_DOCS_LORA_LR[technique],
        "max_steps": work.steps,
        "per_device_train_batch_size": work.batch,
        "gradient_accumulation_steps": 1,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "seed": spec.seed,
    }
    if not checkpointing:
        common["activation_checkpointing"] = False
    if not torch.cuda.is_available():
        common["use_cpu"] = True  # what a user must add on a machine without a GPU (TRL's bf16 default stays)
    if technique == "sft":
        return trl.SFTConfig(**common, max_length=work.seq_len)
    if technique == "dpo":
        return trl.DPOConfig(**common, max_length=work.seq_len)
    if technique == "reward":
        return trl.RewardConfig(**common, max_length=work.seq_len)
    return trl.GRPOConfig(**common, num_generations=work.num_generations, max_completion_length=work.completion_len)


def _trl_trainer(technique: str, model: Any, args: Any, dataset: Any, tokenizer: Any, peft_config: Any) -> Any:
    import trl

    if technique == "grpo":
        return trl.GRPOTrainer(model=model, reward_funcs=[reward_len], args=args, train_dataset=dataset,
                               processing_class=tokenizer, peft_config=peft_config)  # fmt: skip
    trainer_class = {"sft": trl.SFTTrainer, "dpo": trl.DPOTrainer, "reward": trl.RewardTrainer}[technique]
    return trainer_class(model=model, args=args, train_dataset=dataset, processing_class=tokenizer, peft_config=peft_config)


def smoltrain_config(spec: ArmSpec, backend: str) -> Any:
    """smoltrain's defaults plus the harness settings, as a user's preset would give them."""
    from smoltrain.config.schema import RunConfig

    work = spec.work
    fmt = {"sft": "text", "dpo": "preference", "reward": "preference", "grpo": "prompt_only"}[work.technique]
    raw: dict[str, Any] = {
        "model": {"name_or_path": spec.model_dir},
        "data": {"path": spec.data_path, "eval_fraction": 0.0, "format": fmt},
        "train": {
            "technique": work.technique, "max_steps": work.steps, "micro_batch_size": work.batch, "grad_accum": 1,
            "max_length": max(16, work.seq_len), "logging_steps": 1, "save_steps": work.steps + 1,
            "eval_steps": work.steps + 1, "seed": spec.seed, "backend": backend,
            "compare_prompts": 0,  # the before/after answers are not what a benchmark times
        },
    }  # fmt: skip
    if work.technique == "grpo":
        raw["grpo"] = {"num_generations": work.num_generations, "max_completion_length": work.completion_len,
                       "rewards": [{"name": "length", "max_chars": LENGTH_TARGET}]}  # fmt: skip
    return RunConfig.model_validate(raw)


def run_smoltrain(spec: ArmSpec, meter: Meter, backend: str) -> dict[str, Any]:
    """Arms B and C: smoltrain's engine end to end, with the meter attached to its trainer."""
    from smoltrain.engine import run as engine_run
    from smoltrain.engine.control import StopFlag
    from smoltrain.engine.events import RunFailed, RunStarted

    cfg = smoltrain_config(spec, backend)
    events: list[Any] = []
    with _metered_techniques(engine_run.TECHNIQUES, meter):
        engine_run.run(cfg, Path(spec.scratch_dir) / "run", events.append, StopFlag())
    failed = [e for e in events if isinstance(e, RunFailed)]
    if failed:
        raise RuntimeError(failed[0].message)
    started = [e for e in events if isinstance(e, RunStarted)]
    if not started:
        return {}
    # The run_started event's own device and dtype beside its `active` dict: what smoltrain reports.
    return {"device": started[0].device, "dtype": started[0].dtype, **started[0].active}


@contextlib.contextmanager
def _metered_techniques(techniques: dict[str, Any], meter: Meter) -> Iterator[None]:
    """Replace each technique module, for this process, by one whose trainer has the meter attached."""
    from bench.meter import instrument

    original = dict(techniques)

    def metered(module: Any) -> SimpleNamespace:
        def build_trainer(cfg: Any, loaded: Any, data: Any, ctx: Any) -> Any:
            trainer = module.build_trainer(cfg, loaded, data, ctx)
            instrument(trainer, meter, loaded.tokenizer.pad_token_id)
            return trainer

        return SimpleNamespace(FACTS=module.FACTS, describe=module.describe, build_trainer=build_trainer)

    techniques.update({name: metered(module) for name, module in original.items()})
    try:
        yield
    finally:
        techniques.update(original)
