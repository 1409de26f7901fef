"""What each technique is, for code that must not load the ML stack: does its result become the next
stage's model, which model class it trains, which metrics tell its progress, what to do after it.

The engine's technique modules (engine/techniques/) carry these facts as their `FACTS`, so a front
end, the memory model and the engine all answer "is this a reward model?" from one table instead
of comparing names. Stdlib only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ModelClass = Literal["causal_lm", "sequence_classification"]


@dataclass(frozen=True)
class TechniqueFacts:
    name: str
    policy: bool  # its result is a causal LM that a following stage starts from (merged into the base)
    model_class: ModelClass
    headline: tuple[str, ...]  # the logged metrics that tell its progress at a glance, most telling first
    next_step: str  # what a user does after a run of it
    regression_remedy: str = ""  # what to try when evaluation finds the stage made the model worse
    prompts_only: bool = False  # its data is prompts: it samples its own answers (GRPO, RLOO, distillation, curate)
    trains: bool = True  # False: it makes data, not a model (curate)

    @property
    def auto_class(self) -> str:
        """The PEFT class that loads the saved adapter."""
        if self.model_class == "sequence_classification":
            return "AutoPeftModelForSequenceClassification"
        return "AutoPeftModelForCausalLM"


FACTS: dict[str, TechniqueFacts] = {
    "sft": TechniqueFacts(
        "sft", policy=True, model_class="causal_lm", headline=("loss",),
        next_step="Next: read the answers below and try your own (Try it, or smoltrain chat RUN --compare); then "
        "align it with DPO (preference pairs) or GRPO (checkable rewards): a new run started from this one (the "
        "wizard's Model step lists it) or a pipeline such as presets/demo.toml; or export it below.",
        regression_remedy="the SFT data may not teach this task, or teaches another answer format than the task reads; "
        "if the eval loss rose late in training, train fewer steps or at a lower learning rate",
    ),
    "reward": TechniqueFacts(
        "reward", policy=False, model_class="sequence_classification", headline=("accuracy", "loss"),
        next_step="Next: use it as a GRPO reward (reward_model, with this run's folder).",
    ),
    "dpo": TechniqueFacts(
        "dpo", policy=True, model_class="causal_lm", headline=("rewards/accuracies", "rewards/margins", "loss"),
        next_step="Next: compare its answers with the SFT model's; if it got worse, raise dpo.beta.",
        regression_remedy="lower train.learning_rate (LoRA DPO: 5e-6 to 1e-4; the demo's fell 0.77 -> 0.41 at 5e-4 and "
        "held at 1e-4) or the steps, or raise dpo.beta to stay closer to the starting model; check that the chosen "
        "answers really are better and keep the form the task asks for; an undertrained SFT stage also shows here",
    ),
    "kto": TechniqueFacts(
        "kto", policy=True, model_class="causal_lm", headline=("rewards/margins", "kl", "loss"),
        next_step="Next: compare its answers with the starting model's; if it got worse, raise kto.beta.",
        regression_remedy="lower train.learning_rate (LoRA: 5e-6 to 1e-4) or the steps, or raise kto.beta to stay "
        "closer to the starting model; check that the desirable answers really are better, and balance "
        "kto.desirable_weight and kto.undesirable_weight when one label is much rarer",
    ),
    "grpo": TechniqueFacts(
        "grpo", policy=True, model_class="causal_lm", headline=("reward", "loss"), prompts_only=True,
        next_step="Next: read the best and worst samples; if rewards rose without better answers, the reward "
        "is being gamed.",
        regression_remedy="read the samples: a reward that pays for the wrong thing is being gamed; lower the "
        "learning rate, or add a KL penalty (grpo.beta 0.01 to 0.1) to stay nearer the starting model",
    ),
    # TRL's RLOOTrainer logs the rewards before the KL penalty (reward, rewards/<fn>/mean) and the KL itself (kl).
    "rloo": TechniqueFacts(
        "rloo", policy=True, model_class="causal_lm", headline=("reward", "kl", "loss"), prompts_only=True,
        next_step="Next: read the best and worst samples; if the reward rose without better answers, the reward "
        "(a learned reward model most of all) is being gamed: raise rloo.beta or give the verifiable reward more weight.",
        regression_remedy="read the samples: a reward that pays for the wrong thing is being gamed; lower the "
        "learning rate, or raise the KL penalty (rloo.beta 0.05 to 0.2) to stay nearer the starting model",
    ),
    # TRL's DistillationTrainer logs the divergence as loss, the student's per-token entropy and its answers' lengths.
    "distill": TechniqueFacts(
        "distill", policy=True, model_class="causal_lm", headline=("loss", "entropy", "completions/mean_length"),
        prompts_only=True,
        next_step="Next: compare the student's answers with the teacher's on held-out prompts ([eval], or smoltrain "
        "chat RUN --compare); a loss that stops falling means the student has learnt what it can at its size.",
        regression_remedy="check the teacher is really better on this task (evaluate it too); lower "
        "train.learning_rate or the steps; distill.beta 1 (reverse KL) keeps to the teacher's likeliest answers, "
        "0 (forward KL) spreads over all it might say",
    ),
    "curate": TechniqueFacts(
        "curate", policy=False, model_class="causal_lm", headline=("reward", "frac_reward_zero_std"), prompts_only=True,
        trains=False,
        next_step="Next: train on what it kept: a dpo (or sft) stage with data = { curated = \"<this stage>\" }, or "
        "repeat curate -> dpo in a [rounds] section; read the best and worst answers (Samples) first.",
    ),
}  # fmt: skip


def facts(technique: str) -> TechniqueFacts:
    """The facts of a technique named in a config (validated there: an unknown name is a bug here)."""
    return FACTS[technique]
