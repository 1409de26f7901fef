"""The run configuration: one pydantic schema for presets, `--set` overrides, help text and the TUI form.

Each field's `description` is the single source of its help. Unknown keys are errors
(`extra="forbid"`), and cross-field rules live in validators here, so a preset that validates
is a preset the engine can run.

Imports pydantic only (no torch): the CLI validates presets without loading the ML stack.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Technique = Literal["sft", "reward", "dpo", "kto", "grpo", "rloo", "distill", "curate"]
# Where each technique that scores its own samples keeps its reward functions ([[<section>.rewards]]):
# RunConfig.technique_rewards reads a validated config's; this names the raw tables (load.py's paths, the wizard).
REWARDS_SECTIONS: dict[str, str] = {"grpo": "grpo", "rloo": "rloo", "curate": "curate"}
RewardName = Literal["exact_match", "math_answer", "format", "length", "json", "reward_model", "python"]


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

    @field_validator("name_or_path")
    @classmethod
    def _tidy_name(cls, value: str) -> str:
        """What a user pastes: spaces around the id (which made it read as a missing folder), or the model's
        hub page address (https://huggingface.co/Qwen/Qwen3-0.6B) for its id."""
        value = value.strip()
        page = re.match(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/([\w.-]+/[\w.-]+)/?$", value)
        return page.group(1) if page else value


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
    path: str | None = Field(
        None, description="A local .jsonl/.json/.csv/.parquet file, a directory of them, or a hub dataset id."
    )
    curated: str | None = Field(
        None,
        description="Instead of path: the name of an earlier curate stage of this pipeline, to train on what it kept: its "
        "best-of-K answers (sft) or its best-vs-worst pairs (dpo, kto, reward).",
    )
    config: str | None = Field(None, description="Hub dataset configuration (subset) name, if it has several.")
    split: str = Field("train", description="Split to train on, e.g. train or train[:2000].")
    eval_split: str | None = Field(None, description="Split to evaluate on; if unset, eval_fraction of the data is held out.")
    eval_fraction: float = Field(
        0.05, ge=0.0, lt=1.0, description="Fraction of rows held out for evaluation when no eval_split is given; 0 for none."
    )
    max_rows: int | None = Field(None, ge=1, description="Use at most this many rows (handy for a first try).")
    format: Literal[
        "auto", "text", "messages", "prompt_completion", "instruction", "sharegpt",
        "preference", "preference_implicit", "hh_rlhf", "prompt_only",
    ] = Field(
        "auto",
        description="Row shape. auto detects it. SFT: text, messages (OpenAI chat), prompt_completion, "
        "instruction (instruction/input/output), sharegpt (conversations of from/value). Reward and DPO: "
        "preference (prompt, chosen, rejected), preference_implicit (chosen, rejected), hh_rlhf. GRPO: prompt_only.",
    )  # fmt: skip
    template: Literal["chat", "raw"] = Field(
        "chat",
        description="SFT prompt/completion text: chat puts each row into the model's chat template as a user "
        "and an assistant turn (the format the model will be used in; models without a chat template train on "
        "the raw text anyway); raw trains on prompt + completion as plain text. Chat data always uses the template.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description='Rename the file\'s columns to the names smoltrain expects (prompt, completion, messages, '
        'chosen, rejected, answer, ...), e.g. {prompt = "question", completion = "answer"}.',
    )


    @model_validator(mode="after")
    def _one_source(self) -> DataSection:
        if (self.path is None) == (self.curated is None):
            raise ValueError("give data.path (a file, a folder or a hub dataset id) or data.curated (an earlier curate "
                             "stage's name), one of them" if self.path is None else "give data.path or data.curated, not both")
        return self


class TrainSection(Section):
    technique: Technique = Field(
        "sft",
        description="sft: imitate good answers; reward: learn to score answers from preference pairs; "
        "dpo: prefer chosen over rejected answers directly; kto: learn from answers labelled desirable or not (thumbs "
        "up/down, no pairs needed); grpo: online RL on rewards for the model's own samples.",
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimizer steps (overrides epochs).")
    epochs: float = Field(1.0, gt=0, description="Passes over the training data, when max_steps is unset.")
    learning_rate: float = Field(
        2e-4, gt=0, lt=1,
        description="Peak learning rate. LoRA SFT of a real model: 1e-4 to 2e-4; LoRA DPO: 5e-6 to 1e-4 (the tiny "
        "demo model takes 1e-3 and 1e-4).",
    )  # fmt: skip
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
    compare_prompts: int = Field(
        3, ge=0, le=20,
        description="At the end of each SFT, DPO or GRPO stage, this many held-out prompts are answered by the stage's "
        "starting model and by the trained one (greedy), kept in samples/<stage>.json and shown side by side. 0: off.",
    )  # fmt: skip
    auto_fit: bool = Field(
        False,
        description="On running out of GPU memory, retry with half the micro_batch_size and twice the grad_accum "
        "(the same effective batch), down to micro_batch_size 1, and say so.",
    )
    start_from: str | None = Field(
        None,
        description="In a pipeline: the name of an earlier policy stage whose model this stage starts from (e.g. a "
        "distill stage from the SFT model, while the teacher trained after it); default: the previous policy stage's.",
    )


class SftSection(Section):
    loss_on: Literal["completion", "all"] = Field(
        "completion",
        description="completion: learn only the assistant/completion tokens (the usual choice); all: every token.",
    )
    packing: bool = Field(False, description="Pack several short rows into one sequence: faster on short data.")


class RewardSection(Section):
    center_rewards_coefficient: float | None = Field(
        None, ge=0.0, description="Pull the reward model's scores towards 0 (0.01 is usual); unset: off."
    )


class DpoSection(Section):
    beta: float = Field(0.1, gt=0.0, description="How far from the reference model DPO may move: higher stays closer. 0.1 is usual.")
    loss_type: Literal["sigmoid", "ipo", "hinge", "robust", "bco_pair", "nca_pair", "apo_zero", "apo_down", "sppo_hard"] = Field(
        "sigmoid", description="sigmoid: the original DPO loss; ipo: less prone to overfitting on deterministic preferences."
    )
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5, description="Assumed fraction of flipped pairs (robust/cDPO).")
    precompute_ref_log_probs: bool = Field(
        False, description="Score the data with the reference model once before training: saves a forward pass per step."
    )


class KtoSection(Section):
    beta: float = Field(0.1, gt=0.0, description="How far from the reference model KTO may move: higher stays closer. 0.1 is usual.")
    desirable_weight: float = Field(
        1.0, gt=0.0,
        description="Weight of the desirable answers' loss. With fewer desirable than undesirable rows, raise it so that "
        "desirable_weight x desirable rows is 1 to 1.33 times undesirable_weight x undesirable rows (TRL warns otherwise).",
    )  # fmt: skip
    undesirable_weight: float = Field(1.0, gt=0.0, description="Weight of the undesirable answers' loss (see desirable_weight).")


class RewardFunction(Section):
    """One reward for GRPO, picked by name, with a weight; the options that apply to it."""

    name: RewardName = Field(
        description="exact_match: the completion's answer equals the answer column (numbers normalised); "
        "math_answer: the answer after '####' or in \\boxed{} equals the answer column; format: the completion "
        "matches `pattern`; length: penalise completions beyond `max_chars`; json: the completion is valid JSON; "
        "reward_model: a trained reward model's score; python: your own function."
    )
    weight: float = Field(1.0, description="Weight of this reward in the total.")
    answer_column: str = Field("answer", description="exact_match, math_answer: the dataset column with the right answer.")
    pattern: str | None = Field(None, description="format: a regular expression the whole completion must match.")
    max_chars: int | None = Field(None, ge=1, description="length: completions longer than this lose reward.")
    model: str | None = Field(
        None,
        description="reward_model: a run directory (or its final/ folder) of a reward stage, or the name of an "
        "earlier stage in this pipeline.",
    )
    path: str | None = Field(None, description="python: the .py file that defines the function.")
    function: str | None = Field(None, description="python: the function's name in that file.")

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc} (in TOML, write it in 'single quotes' so "
                                 "backslashes stay as they are)") from None
        return pattern

    @model_validator(mode="after")
    def _options_fit_the_reward(self) -> RewardFunction:
        needs = {"format": ["pattern"], "length": ["max_chars"], "reward_model": ["model"], "python": ["path", "function"]}
        missing = [key for key in needs.get(self.name, []) if getattr(self, key) is None]
        if missing:
            raise ValueError(f"reward {self.name!r} needs {' and '.join(missing)}")
        return self


class GroupSampling(Section):
    """What GRPO and RLOO share: each prompt's group of sampled completions, compared with each other."""

    num_generations: int = Field(
        8, ge=2, description="Completions sampled per prompt; their rewards are compared within the group. 4-8 is usual."
    )
    max_completion_length: int = Field(256, ge=1, description="Longest completion sampled, in tokens.")
    temperature: float = Field(1.0, gt=0.0, description="Sampling temperature: the group needs variety to learn from.")


class GrpoSection(GroupSampling):
    beta: float = Field(0.0, ge=0.0, description="KL penalty towards the reference model; 0 (the current practice) to 0.1.")
    epsilon: float = Field(0.2, gt=0.0, description="Clip range of the policy ratio.")
    loss_type: Literal["grpo", "dr_grpo", "dapo", "bnpo"] = Field(
        "dapo", description="How token losses are averaged; dapo (TRL's default) avoids the length bias of grpo."
    )
    rewards: list[RewardFunction] = Field(
        default_factory=list, description="The reward functions, as [[grpo.rewards]] tables with name and weight."
    )


class RlooSection(GroupSampling):
    """[rloo]: REINFORCE with a leave-one-out baseline: each completion's reward against the mean of the
    other num_generations - 1 of its prompt, so no value model is trained (TRL's RLOOTrainer)."""

    beta: float = Field(
        0.05, ge=0.0,
        description="KL penalty towards the reference model (the starting model, adapters off), taken off each "
        "reward; 0.05 is TRL's RLOO default, 0 skips the reference pass.",
    )  # fmt: skip
    rewards: list[RewardFunction] = Field(
        default_factory=list,
        description="The reward functions, as [[rloo.rewards]] tables like [[grpo.rewards]] (math_answer, reward_model "
        "with an earlier reward stage or a run folder, python, ...).",
    )


class CurateSection(Section):
    """[curate]: best-of-K answers and on-policy preference pairs from the current model's own samples."""

    samples: int = Field(8, ge=2, description="Answers sampled per prompt (K); the best, and the worst, of them are kept.")
    temperature: float = Field(1.0, gt=0.0, description="Sampling temperature: the K answers need variety to choose from.")
    max_completion_length: int = Field(256, ge=1, description="Longest answer sampled, in tokens.")
    rewards: list[RewardFunction] = Field(
        default_factory=list,
        description="How the answers are scored, as [[curate.rewards]] tables like [[grpo.rewards]] (math_answer, "
        "reward_model with an earlier reward stage or a run folder, python, ...); default: the run's [[grpo.rewards]].",
    )
    min_score: float | None = Field(
        None,
        description="A prompt's best answer becomes an SFT row only if it scores at least this (1.0 with math_answer: "
        "only right answers); unset: every prompt's best.",
    )
    min_margin: float = Field(
        0.0, ge=0.0,
        description="A pair (best as chosen, worst as rejected) is kept only if their scores differ by more than this; "
        "a prompt whose answers all score the same teaches no preference and is dropped (and counted).",
    )  # fmt: skip
    batch_size: int = Field(64, ge=1, description="Answers generated per forward pass.")


class DistillSection(Section):
    """[distill]: on-policy distillation: the student samples answers, a frozen teacher scores every token."""

    teacher: str | None = Field(
        None,
        description="The teacher whose token distribution the student learns (required): an earlier stage of this "
        "pipeline by name, a smoltrain run folder, a model folder or a hub id. It must share the student's vocabulary "
        "(the same tokenizer: e.g. a larger model of the same family). Loaded frozen, in 4-bit on a GPU as the run's "
        "[quantization] says.",
    )
    beta: float = Field(
        1.0, ge=0.0, le=1.0,
        description="Which divergence the student minimises (TRL's generalized JSD): 0 forward KL (cover everything "
        "the teacher might say), 1 reverse KL (the teacher's likeliest answers, the usual on-policy choice), 0.5 JSD.",
    )  # fmt: skip
    temperature: float = Field(
        1.0, gt=0.0, description="Sampling temperature of the student's answers, and of both distributions in the loss."
    )
    max_completion_length: int = Field(256, ge=1, description="Longest answer the student samples, in tokens.")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="Nucleus sampling of the student's answers; 1.0 samples from all.")


class EvalTask(Section):
    """One thing to score every evaluated model on: a harness benchmark, or held-out prompts and rewards."""

    name: str | None = Field(None, description="Label in the results; default: the harness task's name or the prompts file's stem.")
    harness: str | None = Field(
        None,
        description="An lm-evaluation-harness task: a name (gsm8k, arc_easy, hellaswag, mmlu, ifeval, ...; its data "
        "from the hub) or the path of a task YAML file (its data may be a local file, read from the YAML's folder).",
    )
    prompts: str | None = Field(
        None,
        description="A .jsonl/.json/.csv/.parquet file (or hub dataset id) of held-out prompts: rows with a prompt "
        "(text or chat turns) or messages, plus the columns the rewards read (e.g. answer). Each model answers them "
        "(greedily, or `samples` times at a `temperature`); `rewards` score the answers, and the judge compares them.",
    )
    split: str = Field("train", description="prompts: the split to read (a local file has one: train).")
    rewards: list[RewardFunction] | None = Field(
        None,
        description="prompts: reward functions to average over the answers, as in [[grpo.rewards]] (math_answer, "
        "format, json, python, ...); default: the run's first GRPO (or RLOO) stage's rewards, less reward_model (that "
        "is the judge's job).",
    )
    samples: int = Field(
        1, ge=1,
        description="prompts: answers per question; each question's score is the mean of its answers' (a judge compares "
        "the first). Above 1 needs a temperature.",
    )  # fmt: skip
    temperature: float = Field(
        0.0, ge=0.0,
        description="prompts: 0 answers greedily (the model's single best guess); 1.0 samples from its whole distribution, "
        "as GRPO and RLOO do in training (with samples = 4 or so: the policy's own success rate, with room to improve "
        "where greedy answers are already right).",
    )  # fmt: skip
    num_fewshot: int | None = Field(None, ge=0, description="harness: examples shown before each question; default: the task's.")
    system_prompt: str | None = Field(
        None,
        description="A system turn for every question (harness tasks, and prompts rows that bring none); the "
        "template's own rules apply (folded into the first user turn where it refuses one).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EvalTask:
        if (self.harness is None) == (self.prompts is None):
            raise ValueError("give either harness (a benchmark task) or prompts (a file of held-out prompts), not both")
        if self.harness is not None and self.rewards is not None:
            raise ValueError("rewards score prompts tasks; a harness task brings its own metrics")
        if self.harness is not None and ({"samples", "temperature"} & self.model_fields_set):
            raise ValueError("samples and temperature apply to prompts tasks; a harness task decides how it generates")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"samples = {self.samples} with temperature 0 gives the same greedy answer {self.samples} "
                             "times: set temperature (1.0 samples as in training)")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        source = str(self.harness or self.prompts)
        stem = source.replace("\\", "/").rsplit("/", 1)[-1]
        return stem.rsplit(".", 1)[0] if stem.endswith((".yaml", ".yml", ".jsonl", ".json", ".csv", ".parquet")) else stem


class JudgeSection(Section):
    """Who says which of two answers is better: a trained reward model, or a local model asked with a prompt."""

    reward_model: str | None = Field(
        None, description="A reward stage of this pipeline (its name), or a reward run's folder: the higher score wins."
    )
    model: str | None = Field(
        None,
        description="A causal LM (local folder or hub id) asked `prompt` with both answers, in both orders "
        "(position bias cancels); the answer it gives more probability to wins.",
    )
    prompt: str = Field(
        "Question:\n{question}\n\nAnswer A:\n{a}\n\nAnswer B:\n{b}\n\nWhich answer is better, A or B? "
        "Reply with one letter.",
        description="model: the question put to the judge, with {question}, {a} and {b}.",
    )
    against: Literal["previous", "base"] = Field(
        "previous", description="Each evaluated stage is compared with the stage evaluated before it, or with the base."
    )

    @model_validator(mode="after")
    def _one_judge(self) -> JudgeSection:
        if (self.reward_model is None) == (self.model is None):
            raise ValueError("give either reward_model (a trained reward model) or model (a model asked with a prompt)")
        if self.model is not None and not all(f"{{{k}}}" in self.prompt for k in ("question", "a", "b")):
            raise ValueError("judge.prompt must contain {question}, {a} and {b}")
        return self


class LoggingSection(Section):
    report_to: list[Literal["tensorboard", "trackio", "wandb"]] = Field(
        default_factory=list,
        description="Experiment trackers that also get the run's metrics (each an optional install: pip install "
        "'smoltrain[tensorboard]', [trackio] or [wandb]). TensorBoard writes under the run folder's trackers/. "
        "The app's plots always read the run's events, whatever is chosen here.",
    )
    project: str = Field("smoltrain", description="The tracker's project (W&B, trackio) the runs are grouped under.")


class DistributedSection(Section):
    """[distributed]: the same run on more than one GPU, through accelerate's launcher (see README, "More than one GPU")."""

    gpus: int = Field(1, ge=1, description="Processes to train with, one per GPU (`smoltrain run --gpus N` sets it). "
                      "The effective batch is train.micro_batch_size x train.grad_accum x gpus. A run resumes on "
                      "the same number.")  # fmt: skip
    strategy: Literal["auto", "ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3"] = Field(
        "auto",
        description="How the GPUs share the work. ddp: every GPU holds the whole (4-bit) model and trains on its own "
        "part of each batch: the fastest, when the model fits one card. fsdp: the weights, LoRA gradients and "
        "optimizer are sharded across the GPUs (QLoRA stores 4-bit weights as bf16 for it): for a model that does "
        "not fit one card. deepspeed-zero2 / deepspeed-zero3: DeepSpeed's ZeRO stages (pip install deepspeed). "
        "auto: ddp when `smoltrain estimate` says the model fits one GPU, fsdp otherwise.",
    )


class EvalSection(Section):
    """[eval]: score the base and the trained stages on the same items, after training (or by `smoltrain eval`)."""

    stages: list[str] | None = Field(
        None, description="Stages to evaluate, each right after it trains; default: every SFT, DPO and GRPO stage."
    )
    base: bool = Field(True, description="Score the base model too (before the first evaluated stage): the baseline.")
    tasks: list[EvalTask] = Field(default_factory=list, description="[[eval.tasks]]: what every model is scored on.")
    judge: JudgeSection | None = Field(None, description="[eval.judge]: pairwise preference between stages, as a win rate.")
    limit: int | None = Field(200, ge=1, description="Score at most this many items of each task (the first ones); unset: all.")
    batch_size: int = Field(16, ge=1, description="Questions answered (or scored) per forward pass.")
    max_new_tokens: int = Field(128, ge=1, description="Longest answer to a prompts task, in tokens (a harness task sets its own).")


class Stage(Section):
    """One step of a pipeline: a technique with its own data and overrides of the top-level sections.

    Each section here is merged key by key over the top-level one, and the result is validated
    as a whole run config (see config.load.stage_configs)."""

    technique: Technique = Field(description="The technique of this stage.")
    name: str | None = Field(None, description="Stage name, used for its folder under stages/; default: <n>-<technique>.")
    data: dict[str, Any] = Field(default_factory=dict, description="This stage's [data] (merged over the top-level one).")
    lora: dict[str, Any] = Field(default_factory=dict, description="Overrides of [lora] for this stage.")
    train: dict[str, Any] = Field(default_factory=dict, description="Overrides of [train] for this stage.")
    sft: dict[str, Any] = Field(default_factory=dict, description="Overrides of [sft] for this stage.")
    reward: dict[str, Any] = Field(default_factory=dict, description="Overrides of [reward] for this stage.")
    dpo: dict[str, Any] = Field(default_factory=dict, description="Overrides of [dpo] for this stage.")
    kto: dict[str, Any] = Field(default_factory=dict, description="Overrides of [kto] for this stage.")
    grpo: dict[str, Any] = Field(default_factory=dict, description="Overrides of [grpo] for this stage.")
    rloo: dict[str, Any] = Field(default_factory=dict, description="Overrides of [rloo] for this stage.")
    curate: dict[str, Any] = Field(default_factory=dict, description="Overrides of [curate] for this stage.")
    distill: dict[str, Any] = Field(default_factory=dict, description="Overrides of [distill] for this stage.")


class RoundsSection(Section):
    """[rounds]: repeat a group of consecutive stages, each round from the model the last one left."""

    stages: list[str] = Field(
        min_length=1,
        description='The names of consecutive [[stages]] to repeat, e.g. ["curate", "dpo"]: each round samples from the '
        "model the round before trained. Round k's stages are named round-k-<name>, each with its own folder.",
    )
    times: int = Field(2, ge=1, le=20, description="How many rounds.")


class RunConfig(Section):
    """A whole run: what to train, on what, how. With [[stages]], a pipeline of runs."""

    name: str | None = Field(None, description="Run name: results go to <output_dir>/<name>. Default: preset name + time.")
    output_dir: str = Field("runs", description="Folder that holds the run directories.")
    model: ModelSection
    quantization: QuantizationSection = Field(default_factory=QuantizationSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    data: DataSection | None = Field(None, description="The dataset; each [[stages]] entry may give its own.")
    train: TrainSection = Field(default_factory=TrainSection)
    sft: SftSection = Field(default_factory=SftSection)
    reward: RewardSection = Field(default_factory=RewardSection)
    dpo: DpoSection = Field(default_factory=DpoSection)
    kto: KtoSection = Field(default_factory=KtoSection)
    grpo: GrpoSection = Field(default_factory=GrpoSection)
    rloo: RlooSection = Field(default_factory=RlooSection)
    curate: CurateSection = Field(default_factory=CurateSection)
    distill: DistillSection = Field(default_factory=DistillSection)
    stages: list[Stage] = Field(
        default_factory=list,
        description="A pipeline: [[stages]] run in order, each starting from the previous policy stage's merged result.",
    )
    rounds: RoundsSection | None = Field(None, description="[rounds]: repeat a group of stages (curate -> DPO) N times.")
    eval: EvalSection | None = Field(None, description="[eval]: score the base and each trained stage on held-out tasks.")
    logging: LoggingSection = Field(default_factory=LoggingSection, description="[logging]: experiment trackers.")
    distributed: DistributedSection = Field(default_factory=DistributedSection, description="[distributed]: more than one GPU.")

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
        if self.data is None:
            if not self.stages:
                raise ValueError("missing required key data: add a [data] section (or [[stages]] with their own data)")
            return self
        if self.data.eval_split is not None and "eval_fraction" in self.data.model_fields_set:
            raise ValueError("set either data.eval_split or data.eval_fraction, not both")
        if self.group_sampling is not None:
            self._check_groups(self.train.technique, self.group_sampling)
        if self.train.technique == "distill" and not self.distill.teacher:
            raise ValueError("distill needs a teacher: set distill.teacher to an earlier stage's name, a run folder, a "
                             "model folder or a hub id (a larger model with the student's tokenizer)")
        if self.train.technique == "curate" and not self.curate_rewards:
            raise ValueError("curate needs a reward to choose the best answer: add a [[curate.rewards]] table (or "
                             "[[grpo.rewards]]), e.g. name = \"math_answer\"")
        return self

    @property
    def curate_rewards(self) -> list[RewardFunction]:
        """What a curate stage scores answers with: its own [[curate.rewards]], else the run's GRPO rewards."""
        return self.curate.rewards or self.grpo.rewards

    @property
    def curate_rewards_key(self) -> str:
        """Where curate_rewards come from, for messages that name a reward: curate.rewards or grpo.rewards."""
        return "curate.rewards" if self.curate.rewards else "grpo.rewards"

    @property
    def technique_rewards(self) -> list[RewardFunction]:
        """The reward functions this config's technique scores its samples with (the data must carry the
        columns they read): GRPO's, RLOO's, a curate stage's; none for a technique that samples nothing."""
        if self.train.technique == "curate":
            return self.curate_rewards
        if self.train.technique == "distill":
            return []  # the teacher scores the answers, not reward functions: no answer column is needed
        return (self.group_sampling or self.grpo).rewards

    @property
    def group_sampling(self) -> GrpoSection | RlooSection | None:
        """The section of an RL technique that samples a group of completions per prompt and learns from
        their rewards ([grpo] or [rloo]); None for any other technique."""
        sections: dict[str, GrpoSection | RlooSection] = {"grpo": self.grpo, "rloo": self.rloo}
        return sections.get(self.train.technique)

    def _check_groups(self, name: str, section: GrpoSection | RlooSection) -> None:
        train = self.train
        if not section.rewards:
            raise ValueError(
                f"{name} needs at least one reward: add a [[{name}.rewards]] table, e.g. name = \"math_answer\""
            )
        # TRL samples num_generations completions per prompt inside one generation batch (across all processes).
        gpus = self.distributed.gpus
        batch = train.micro_batch_size * train.grad_accum * gpus
        if batch % section.num_generations:
            shape = "train.micro_batch_size x train.grad_accum" + (" x distributed.gpus" if gpus > 1 else "")
            raise ValueError(
                f"{name}: the effective batch ({shape} = {batch}) must be a multiple "
                f"of {name}.num_generations ({section.num_generations})"
            )
