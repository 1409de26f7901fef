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
        "grpo", policy=True, model_class="causal_lm", headline=("reward", "loss"),
        next_step="Next: read the best and worst samples; if rewards rose without better answers, the reward "
        "is being gamed.",
        regression_remedy="read the samples: a reward that pays for the wrong thing is being gamed; lower the "
        "learning rate, or add a KL penalty (grpo.beta 0.01 to 0.1) to stay nearer the starting model",
    ),
}  # fmt: skip


def facts(technique: str) -> TechniqueFacts:
    """The facts of a technique named in a config (validated there: an unknown name is a bug here)."""
    return FACTS[technique]
