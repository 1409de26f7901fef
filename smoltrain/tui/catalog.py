"""What the wizard offers: curated models, techniques, curated datasets, and the local Hugging Face cache.

The curated lists are data, kept short and current: popular small open models a hobbyist's card
can train with QLoRA, and public datasets in a shape each technique reads. Stdlib only; never
imports torch or textual.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from smoltrain.config.presets import PROJECT_ROOT

DEMO_MODEL = PROJECT_ROOT / "assets" / "tiny-llama"
DEMO_DATA = PROJECT_ROOT / "assets" / "data"
# Bytes per parameter of NF4 weights with double quantization, plus the 16-bit embeddings and
# norms bitsandbytes leaves alone: about 0.55-0.6 byte per parameter on small models.
_BYTES_PER_PARAM_4BIT = 0.6


@dataclass(frozen=True)
class ModelChoice:
    name_or_path: str
    params_b: float  # billions of parameters
    note: str

    @property
    def footprint_4bit_gb(self) -> float:
        return self.params_b * _BYTES_PER_PARAM_4BIT

    def label(self) -> str:
        size = f"{self.params_b * 1000:.0f}M" if self.params_b < 1 else f"{self.params_b:g}B"
        return f"{self.name_or_path}  ({size} params, ~{self.footprint_4bit_gb:.1f} GB in 4-bit)  {self.note}"


CURATED_MODELS: tuple[ModelChoice, ...] = (
    ModelChoice("HuggingFaceTB/SmolLM2-360M-Instruct", 0.36, "fastest to try"),
    ModelChoice("Qwen/Qwen2.5-0.5B-Instruct", 0.49, "small, multilingual"),
    ModelChoice("Qwen/Qwen3-0.6B", 0.6, "small, thinking and chat; 8 GB cards"),
    ModelChoice("google/gemma-3-1b-it", 1.0, "gated: accept the licence on the hub"),
    ModelChoice("meta-llama/Llama-3.2-1B-Instruct", 1.24, "gated: accept the licence on the hub"),
    ModelChoice("Qwen/Qwen2.5-1.5B-Instruct", 1.54, "good GRPO base for math"),
    ModelChoice("HuggingFaceTB/SmolLM2-1.7B-Instruct", 1.71, "English chat"),
    ModelChoice("Qwen/Qwen3-1.7B", 1.7, "12 GB cards"),
    ModelChoice("meta-llama/Llama-3.2-3B-Instruct", 3.21, "gated; 12-16 GB cards"),
    ModelChoice("microsoft/Phi-4-mini-instruct", 3.84, "reasoning for its size; 16 GB cards"),
    ModelChoice("Qwen/Qwen3-4B", 4.0, "16 GB cards"),
    ModelChoice("meta-llama/Llama-3.1-8B-Instruct", 8.03, "gated; 16 GB tight, 24 GB comfortable"),
    ModelChoice("Qwen/Qwen3-8B", 8.2, "24 GB cards"),
)


@dataclass(frozen=True)
class TechniqueChoice:
    name: str
    title: str
    when: str
    data: str


TECHNIQUES: tuple[TechniqueChoice, ...] = (
    TechniqueChoice("sft", "SFT (supervised fine-tuning)",
                    "teach a format, a style or a skill by example; always the first step",
                    "chats, prompt/completion pairs, Alpaca rows or plain text"),
    TechniqueChoice("reward", "Reward model",
                    "learn a judge that scores answers, e.g. to reward GRPO on open-ended chat",
                    "preference pairs: prompt, chosen, rejected"),
    TechniqueChoice("dpo", "DPO (direct preference optimization)",
                    "nudge an SFT model towards preferred answers, without a reward model",
                    "preference pairs: prompt, chosen, rejected"),
    TechniqueChoice("kto", "KTO (thumbs up/down)",
                    "nudge a model towards answers rated good and away from ones rated bad; no pairs needed",
                    "single answers labelled desirable or not: prompt, completion, label (or preference pairs)"),
    TechniqueChoice("grpo", "GRPO (online RL)",
                    "reinforce the model's own samples that score well on checkable rewards (math, format, JSON)",
                    "prompts, plus e.g. an answer column for the reward"),
    TechniqueChoice("rloo", "RLOO (online RL, reward model)",
                    "where PPO stood: reinforce samples that beat their siblings' mean, scored by a trained reward "
                    "model and/or checkable rewards, kept near the start by a KL penalty; no value model",
                    "prompts (plus an answer column for math_answer); a reward stage or run for reward_model"),
    TechniqueChoice("distill", "Distillation (from a teacher)",
                    "a bigger model of the same family (or an earlier stage) teaches yours token by token, "
                    "on answers your model samples itself",
                    "prompts only; and a teacher with the same tokenizer"),
    TechniqueChoice("curate", "Curate (best-of-K data)",
                    "sample K answers per prompt from your model and keep the best (SFT data) and the best against "
                    "the worst (DPO pairs), scored by rewards; then train on them",
                    "prompts, plus e.g. an answer column for the reward"),
)  # fmt: skip


@dataclass(frozen=True)
class DatasetChoice:
    path: str
    note: str
    config: str | None = None
    split: str = "train"
    eval_split: str | None = None
    columns: tuple[tuple[str, str], ...] = ()

    def data_section(self) -> dict[str, object]:
        """The [data] table this choice stands for."""
        section: dict[str, object] = {"path": self.path, "split": self.split}
        if self.config:
            section["config"] = self.config
        if self.eval_split:
            section["eval_split"] = self.eval_split
        if self.columns:
            section["columns"] = dict(self.columns)
        return section


_DEMO = {
    "sft": DatasetChoice(str(DEMO_DATA / "sft.jsonl"), "bundled demo chats (offline, 2,000 rows)"),
    "reward": DatasetChoice(str(DEMO_DATA / "reward.jsonl"), "bundled demo pairs (offline)"),
    "dpo": DatasetChoice(str(DEMO_DATA / "dpo.jsonl"), "bundled demo pairs (offline)"),
    "kto": DatasetChoice(str(DEMO_DATA / "kto.jsonl"), "bundled demo answers rated up or down (offline)"),
    "grpo": DatasetChoice(str(DEMO_DATA / "grpo.jsonl"), "bundled demo sums with answers (offline)"),
}
_DEMO["curate"] = _DEMO["grpo"]
_DEMO["rloo"] = _DEMO["grpo"]
_DEMO["distill"] = _DEMO["grpo"]
_PAIRS = DatasetChoice("trl-lib/ultrafeedback_binarized", "62k chat preference pairs", eval_split="test")
CURATED_DATASETS: dict[str, tuple[DatasetChoice, ...]] = {
    "sft": (
        _DEMO["sft"],
        DatasetChoice("trl-lib/Capybara", "16k multi-turn chats, high quality", eval_split="test"),
        DatasetChoice("HuggingFaceTB/smoltalk", "everyday conversations (small subset)", config="everyday-conversations",
                      eval_split="test"),
        DatasetChoice("yahma/alpaca-cleaned", "52k Alpaca instructions, cleaned"),
    ),
    "reward": (_DEMO["reward"], _PAIRS),
    "dpo": (_DEMO["dpo"], _PAIRS),
    "kto": (_DEMO["kto"], DatasetChoice("trl-lib/kto-mix-14k", "14k chat answers labelled desirable or not", eval_split="test")),
    "grpo": (
        _DEMO["grpo"],
        DatasetChoice("openai/gsm8k", "7.5k grade-school math problems with answers", config="main", eval_split="test",
                      columns=(("prompt", "question"),)),
    ),
}  # fmt: skip
CURATED_DATASETS["curate"] = CURATED_DATASETS["grpo"]  # prompts with answers, sampled and scored the same way
CURATED_DATASETS["rloo"] = CURATED_DATASETS["grpo"]
CURATED_DATASETS["distill"] = CURATED_DATASETS["grpo"]  # prompts: the teacher scores, the answers go unread


def technique(name: str) -> TechniqueChoice:
    return next(t for t in TECHNIQUES if t.name == name)


def hf_cache_dir() -> Path:
    """Where huggingface_hub keeps downloaded repositories (HF_HUB_CACHE, HF_HOME, or ~/.cache)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_models(cache: Path | None = None) -> list[str]:
    """Hub ids of the models already downloaded: they load offline and at once."""
    cache = cache or hf_cache_dir()
    if not cache.is_dir():
        return []
    return sorted(p.name.removeprefix("models--").replace("--", "/") for p in cache.glob("models--*") if p.is_dir())
