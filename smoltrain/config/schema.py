"""The run configuration: one pydantic schema for presets, `--set` overrides, help text and the TUI form.

Each field's `description` is the single source of its help. Unknown keys are errors
(`extra="forbid"`), and cross-field rules live in validators here, so a preset that validates
is a preset the engine can run.

Imports pydantic only (no torch): the CLI validates presets without loading the ML stack.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Technique = Literal["sft"]


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelSection(Section):
    name_or_path: str = Field(
        description="Hugging Face hub id (e.g. Qwen/Qwen3-0.6B) or a local directory with config.json and weights.",
    )
    revision: str | None = Field(None, description="Hub branch, tag or commit to load; the default branch if unset.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto",
        description="Compute dtype. auto: bfloat16 on GPUs that support it, else float16; float32 on CPU.",
    )
    trust_remote_code: bool = Field(
        False, description="Run Python code shipped with the model repository. Only for repositories you trust."
    )


class QuantizationSection(Section):
    mode: Literal["4bit", "none"] = Field(
        "4bit",
        description="4bit: load the base weights in 4-bit with bitsandbytes (QLoRA), about 4x less memory. "
        "none: keep them in the compute dtype.",
    )
    quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type; NF4 suits normally distributed weights.")
    double_quant: bool = Field(True, description="Quantize the quantization constants too (saves ~0.4 bits per weight).")


class LoraSection(Section):
    enabled: bool = Field(True, description="Train low-rank adapters instead of the full weights.")
    rank: int = Field(16, ge=1, le=1024, description="Adapter rank r: capacity of the update. 8-64 is typical.")
    alpha: int = Field(32, ge=1, description="Adapter scale; the update is multiplied by alpha/rank. Often 2x rank.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description='Layers that get adapters: "all-linear" (every linear layer but the output head) or a list of '
        'module names such as ["q_proj", "v_proj"].',
    )


class DataSection(Section):
    path: str = Field(description="A local .jsonl/.json/.csv/.parquet file, a directory of them, or a hub dataset id.")
    config: str | None = Field(None, description="Hub dataset configuration (subset) name, if it has several.")
    split: str = Field("train", description="Split to train on, e.g. train or train[:2000].")
    eval_split: str | None = Field(None, description="Split to evaluate on; if unset, eval_fraction of the data is held out.")
    eval_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Fraction of rows held out for evaluation when no eval_split is given; 0 for none."
    )
    max_rows: int | None = Field(None, ge=1, description="Use at most this many rows (handy for a first try).")
    format: Literal["auto", "text", "messages", "prompt_completion", "instruction", "sharegpt"] = Field(
        "auto",
        description="Row shape. auto detects it: text, messages (OpenAI chat), prompt_completion, "
        "instruction (instruction/input/output) or sharegpt (conversations of from/value).",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description='Rename the file\'s columns to the names smoltrain expects, e.g. {prompt = "question", '
        'completion = "answer"}.',
    )


class TrainSection(Section):
    technique: Technique = Field("sft", description="sft: imitate good answers (supervised fine-tuning).")
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data, when max_steps is unset.")
    learning_rate: float = Field(2e-4, gt=0, lt=1, description="Peak learning rate. LoRA SFT: 1e-4 to 2e-4.")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="How the learning rate decays after warmup."
    )
    warmup_ratio: float = Field(0.03, ge=0.0, lt=1.0, description="Fraction of steps spent warming the learning rate up.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay.")
    max_grad_norm: float = Field(1.0, gt=0, description="Clip gradients to this norm.")
    micro_batch_size: int = Field(2, ge=1, description="Sequences per forward pass; the main memory knob.")
    grad_accum: int = Field(
        4, ge=1, description="Micro-batches accumulated per optimizer step: effective batch = micro_batch_size x grad_accum."
    )
    max_length: int = Field(1024, ge=16, description="Longest sequence in tokens; longer rows are truncated.")
    seed: int = Field(42, description="Seed for data order, adapter init and sampling: same seed, same run.")
    gradient_checkpointing: bool = Field(
        True, description="Recompute activations in the backward pass: much less memory, about 20-30% slower."
    )
    kernels: Literal["auto", "liger", "none"] = Field(
        "auto",
        description="Fused Triton kernels. auto: Liger on CUDA for architectures it supports; liger: require them; none: off.",
    )
    backend: Literal["auto", "hf", "unsloth"] = Field(
        "auto",
        description="auto: Unsloth if installed and on CUDA, else plain transformers; hf: always transformers; "
        "unsloth: require Unsloth.",
    )
    optimizer: Literal["auto", "adamw_torch", "adamw_8bit", "paged_adamw_8bit"] = Field(
        "auto", description="auto: paged 8-bit AdamW on CUDA (less memory), AdamW on CPU."
    )
    logging_steps: int = Field(1, ge=1, description="Log metrics every this many steps.")
    eval_steps: int = Field(50, ge=1, description="Evaluate on the held-out split every this many steps.")
    save_steps: int = Field(100, ge=1, description="Save a resumable checkpoint every this many steps.")
    save_total_limit: int = Field(2, ge=1, description="Keep at most this many checkpoints on disk.")


class SftSection(Section):
    loss_on: Literal["completion", "all"] = Field(
        "completion",
        description="completion: learn only the assistant/completion tokens (the usual choice); all: every token.",
    )
    packing: bool = Field(False, description="Pack several short rows into one sequence: faster on short data.")


class RunConfig(Section):
    """A whole run: what to train, on what, how."""

    name: str | None = Field(None, description="Run name: results go to <output_dir>/<name>. Default: preset name + time.")
    output_dir: str = Field("runs", description="Folder that holds the run directories.")
    model: ModelSection
    quantization: QuantizationSection = Field(default_factory=QuantizationSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection
    train: TrainSection = Field(default_factory=TrainSection)
    sft: SftSection = Field(default_factory=SftSection)

    @field_validator("name")
    @classmethod
    def _name_is_a_folder_name(cls, name: str | None) -> str | None:
        if name is not None and (not name or "/" in name or "\\" in name or name in {".", ".."}):
            raise ValueError("must be a plain folder name (no slashes)")
        return name

    @model_validator(mode="after")
    def _cross_field_rules(self) -> RunConfig:
        if self.quantization.mode == "4bit" and not self.lora.enabled:
            raise ValueError(
                "quantization.mode = '4bit' needs lora.enabled = true: 4-bit weights cannot be trained directly "
                "(set quantization.mode = 'none' for full fine-tuning)"
            )
        if self.data.eval_split is not None and "eval_fraction" in self.data.model_fields_set:
            raise ValueError("set either data.eval_split or data.eval_fraction, not both")
        return self
