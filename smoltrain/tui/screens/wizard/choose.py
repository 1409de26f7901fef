"""The first two wizard steps: which model, and which technique.

Model: the bundled demo model, the app's finished runs (to train on from a run's result: the engine
merges its adapter first, see smoltrain/pastrun.py), a curated list of popular small open models
(parameters and 4-bit footprint), the models already in the local Hugging Face cache, or any hub id
or local path typed in. Technique: SFT, reward model, DPO, KTO or GRPO, each with when to use it and what data it needs;
picking one sets that technique's usual defaults. Never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import Input, OptionList
from textual.widgets.option_list import Option

from smoltrain.config.schema import REWARDS_SECTIONS
from smoltrain.pastrun import origin_model
from smoltrain.rundir import RunDir
from smoltrain.tui.catalog import (
    CURATED_DATASETS,
    CURATED_MODELS,
    DEMO_MODEL,
    TECHNIQUES,
    cached_models,
)
from smoltrain.tui.runs import RunInfo, list_runs
from smoltrain.tui.screens.wizard.base import Step

# Usual starting points (FIELD-NOTES): LoRA learning rates per technique; GRPO needs a reward and
# a batch that holds whole groups of num_generations samples.
TECHNIQUE_DEFAULTS: dict[str, dict[str, Any]] = {
    "sft": {"train.learning_rate": 2e-4},
    "reward": {"train.learning_rate": 1e-4},
    "dpo": {"train.learning_rate": 5e-6},
    "kto": {"train.learning_rate": 5e-6},
    "grpo": {"train.learning_rate": 2e-5, "train.micro_batch_size": 8, "train.grad_accum": 1, "grpo.num_generations": 8},
    "rloo": {"train.learning_rate": 2e-5, "train.micro_batch_size": 8, "train.grad_accum": 1, "rloo.num_generations": 8},
    "curate": {"curate.samples": 8, "curate.temperature": 1.0},
    "distill": {"train.learning_rate": 1e-4, "distill.beta": 1.0, "distill.temperature": 1.0},
}
# The tiny demo model learns in a minute only with big steps and short sequences (see presets/demo-*.toml).
DEMO_DEFAULTS: dict[str, dict[str, Any]] = {
    "sft": {"train.learning_rate": 1e-3, "train.max_steps": 100},
    "reward": {"train.learning_rate": 5e-4, "train.max_steps": 60},
    "dpo": {"train.learning_rate": 5e-4, "train.max_steps": 60},
    "kto": {"train.learning_rate": 5e-4, "train.max_steps": 60},
    "grpo": {"train.learning_rate": 2e-4, "train.max_steps": 40, "train.micro_batch_size": 16, "grpo.max_completion_length": 24},
    "rloo": {"train.learning_rate": 2e-4, "train.max_steps": 40, "train.micro_batch_size": 16, "rloo.max_completion_length": 24},
    "curate": {"curate.max_completion_length": 24, "curate.batch_size": 128},
    "distill": {"train.learning_rate": 4e-4, "train.max_steps": 40, "train.micro_batch_size": 16,
                "distill.max_completion_length": 24},
}
# Where each technique that scores its own samples keeps its reward functions (the settings step's picker).
REWARDS_SECTION = REWARDS_SECTIONS
DEMO_COMMON = {"train.max_length": 128, "train.micro_batch_size": 8, "train.grad_accum": 1, "train.eval_steps": 20,
               "train.logging_steps": 5, "lora.rank": 16, "lora.alpha": 32}  # fmt: skip


class ModelStep(Step):
    TITLE = "Model"
    EXPLAIN = (
        "The base model to post-train. Smaller models train faster and fit smaller cards: in 4-bit (QLoRA) the "
        "weights take about 0.6 GB per billion parameters, plus room for activations. Start from an instruct "
        "model unless you want to teach the chat format yourself. The bundled demo model trains in a minute on a CPU. "
        "A finished run of yours trains on from its result (its adapter merged into its base), e.g. DPO after SFT."
    )

    def compose(self) -> ComposeResult:
        yield from self.compose_explanation()
        options = [Option(Text.assemble(("demo  ", "bold green"), f"{DEMO_MODEL}  (1.75M params, bundled, offline)"),
                          id=str(DEMO_MODEL))]  # fmt: skip
        options += [Option(Text.assemble(("run   ", "bold magenta"), f"{r.name}  ({r.technique} on {r.model}, {r.when_text()})"),
                           id=str(r.path)) for r in _finished_runs(self.app.runs_dir)]  # fmt: skip
        options += [Option(Text.assemble(("hub   ", "bold"), m.label()), id=m.name_or_path) for m in CURATED_MODELS]
        options += [Option(Text.assemble(("cache ", "bold cyan"), f"{m}  (downloaded)"), id=f"cache:{m}") for m in cached_models()]
        yield OptionList(*options, id="model-list")
        yield Input(placeholder="or type a hub id (org/name) or a local folder, then Enter", id="model-input")

    def enter(self) -> None:
        current = self.draft.get("model.name_or_path", "")
        self.query_one("#model-input", Input).value = current or str(DEMO_MODEL)
        self.query_one("#model-list", OptionList).focus()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option.id:
            self.query_one("#model-input", Input).value = event.option.id.removeprefix("cache:")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.on_option_list_option_highlighted(event)  # type: ignore[arg-type]
        self.screen.action_next()  # type: ignore[attr-defined]

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.screen.action_next()  # type: ignore[attr-defined]

    def leave(self) -> str | None:
        value = self.query_one("#model-input", Input).value.strip()
        if not value:
            return "pick a model, or type a hub id or a local folder"
        self.draft.set("model.name_or_path", value)
        return None


def _finished_runs(runs_dir: Path) -> list[RunInfo]:
    """The runs there is a result to start from: completed, or stopped after saving final/."""
    return [r for r in list_runs(runs_dir) if r.status in ("completed", "stopped") and RunDir(r.path).final.is_dir()]


class TechniqueStep(Step):
    TITLE = "Technique"
    EXPLAIN = (
        "How the model learns. Almost every project starts with SFT; align an SFT model afterwards with DPO "
        "(preference pairs) or GRPO (rewards you can check). Picking a technique sets its usual learning rate."
    )

    def compose(self) -> ComposeResult:
        yield from self.compose_explanation()
        options = [
            Option(Text.assemble((t.title, "bold"), f"\n  when: {t.when}\n  data: {t.data}", ("", "")), id=t.name)
            for t in TECHNIQUES
        ]
        yield OptionList(*options, id="technique-list")

    def enter(self) -> None:
        listing = self.query_one(OptionList)
        listing.highlighted = [t.name for t in TECHNIQUES].index(self.draft.technique)
        listing.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.screen.action_next()  # type: ignore[attr-defined]

    def leave(self) -> str | None:
        listing = self.query_one(OptionList)
        if listing.highlighted is None:
            return "pick a technique"
        chosen = TECHNIQUES[listing.highlighted].name
        if chosen != self.draft.technique or "learning_rate" not in self.draft.raw.get("train", {}):
            apply_technique(self.draft.raw, chosen)
        return None


def apply_technique(raw: dict[str, Any], technique: str) -> None:
    """Switch the draft to `technique` with its usual defaults (and the demo model's, for the demo)."""
    raw.setdefault("train", {})["technique"] = technique
    # A run trained on the demo model (or on a run of it) is as tiny: it takes the demo's defaults too.
    demo = origin_model(str(raw.get("model", {}).get("name_or_path", ""))) == str(DEMO_MODEL)
    values = {**TECHNIQUE_DEFAULTS[technique], **(DEMO_COMMON if demo else {}), **(DEMO_DEFAULTS[technique] if demo else {})}
    for dotted, value in values.items():
        section, key = dotted.split(".")
        raw.setdefault(section, {})[key] = value
    if technique in REWARDS_SECTION and not raw.get(REWARDS_SECTION[technique], {}).get("rewards"):
        raw.setdefault(REWARDS_SECTION[technique], {})["rewards"] = [{"name": "math_answer", "weight": 1.0}]
    data = raw.get("data") or {}
    # A demo dataset belongs to one technique: follow the switch, or the first step would fail on its shape.
    if not data.get("path") or any(data.get("path") == d.path for ds in CURATED_DATASETS.values() for d in ds[:1]):
        raw["data"] = CURATED_DATASETS[technique][0].data_section()
        if technique in REWARDS_SECTION or technique == "distill":
            raw["data"]["eval_fraction"] = 0.0  # evaluating GRPO samples num_generations answers per prompt: slow
