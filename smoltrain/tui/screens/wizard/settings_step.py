"""The settings step: a form generated from the config schema (LoRA, learning rate, steps or
epochs, batch and accumulation, max length, 4-bit, checkpointing, kernels, and the technique's own
knobs), each field with its help from the schema; for GRPO a reward picker with weights; and the
memory meter, docked above the scrolling form so it stays in sight while the memory knobs change.

Each key is checked in place by the form at once; the whole-draft check and the memory estimate wait
for a pause in typing (CHECK_DELAY), so a burst of keys costs one estimate, not one a key. Nothing is
written back into the field being typed in. Never imports torch.
"""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static

from smoltrain.config.techniques import facts
from smoltrain.tui.draft import Draft
from smoltrain.tui.screens.wizard.choose import REWARDS_SECTION
from smoltrain.tui.screens.wizard.base import Step
from smoltrain.tui.widgets.memory_meter import MemoryMeter
from smoltrain.tui.widgets.reward_picker import RewardPicker
from smoltrain.tui.widgets.schema_form import SchemaForm

COMMON_FIELDS = [
    "quantization.mode", "lora.rank", "lora.alpha", "lora.dropout",
    "train.max_steps", "train.epochs", "train.learning_rate", "train.lr_scheduler", "train.warmup_ratio",
    "train.micro_batch_size", "train.grad_accum", "train.max_length",
    "train.gradient_checkpointing", "train.kernels", "train.backend", "train.optimizer",
    "train.eval_steps", "train.save_steps", "train.logging_steps",
    "distributed.gpus", "distributed.strategy",
]  # fmt: skip
TECHNIQUE_FIELDS = {
    "sft": ["sft.loss_on", "sft.packing"],
    "reward": ["reward.center_rewards_coefficient"],
    "dpo": ["dpo.beta", "dpo.loss_type"],
    "kto": ["kto.beta", "kto.desirable_weight", "kto.undesirable_weight"],
    "grpo": ["grpo.num_generations", "grpo.max_completion_length", "grpo.temperature", "grpo.beta", "grpo.loss_type"],
    "rloo": ["rloo.num_generations", "rloo.max_completion_length", "rloo.temperature", "rloo.beta"],
    "curate": ["curate.samples", "curate.temperature", "curate.max_completion_length", "curate.min_score",
               "curate.min_margin", "curate.batch_size"],
    "distill": ["distill.teacher", "distill.beta", "distill.temperature", "distill.max_completion_length"],
}
# A technique that trains nothing (curate) has none of the training knobs.
SAMPLING_FIELDS = ["quantization.mode", "train.max_length", "train.seed", "train.logging_steps"]


class SettingsStep(Step):
    TITLE = "Settings"
    EXPLAIN = (
        "How it trains. The defaults suit a first run; micro_batch_size and max_length are the memory knobs, "
        "grad_accum raises the effective batch for free. Set max_steps for a quick try, epochs for a real run. "
        "Tab moves between fields."
    )
    DEFAULT_CSS = """
    SettingsStep #settings-top { dock: top; height: auto; background: $background; }
    SettingsStep #settings-problem { height: auto; max-height: 3; }
    """
    CHECK_DELAY = 0.3  # seconds without an edit before the draft is checked and the memory estimated

    def __init__(self, draft: Draft) -> None:
        super().__init__(draft)
        self._pending_check: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="settings-top"):  # docked: it does not scroll with the form
            yield MemoryMeter(id="memory")
            yield Static("", id="settings-problem")
        yield from self.compose_explanation()
        yield Vertical(id="settings-form")

    def enter(self) -> None:
        # The fields depend on the technique: rebuild the form, once the old one is gone (same ids).
        self.run_worker(self._rebuild(), exclusive=True, group="settings-form")

    async def _rebuild(self) -> None:
        holder = self.query_one("#settings-form", Vertical)
        await holder.remove_children()
        technique = self.draft.technique
        common = COMMON_FIELDS if facts(technique).trains else SAMPLING_FIELDS
        fields = common + TECHNIQUE_FIELDS[technique]
        values = {key: self.draft.get(key) for key in fields if self.draft.get(key) is not None}
        widgets: list[Widget] = [SchemaForm(fields, values, id="form")]
        if technique in REWARDS_SECTION:
            widgets.append(RewardPicker(self.draft.raw.get(REWARDS_SECTION[technique], {}).get("rewards", []), id="rewards"))
        await holder.mount_all(widgets)
        self._check()

    def on_schema_form_changed(self, event: SchemaForm.Changed) -> None:
        self.draft.set(event.key, event.value)
        self._check_soon()

    def on_reward_picker_changed(self, event: RewardPicker.Changed) -> None:
        self.draft.section(REWARDS_SECTION[self.draft.technique])["rewards"] = event.rewards
        self._check_soon()

    def fit(self) -> None:
        """Ask the memory model for the batch shape that fits this GPU (ctrl+f, bound by the wizard)."""
        error = self.draft.error()
        if error:
            self.notify(error.render(), title="fit", severity="warning")
            return
        self.query_one(MemoryMeter).fit_for(self.draft.validate())

    def on_memory_meter_fitted(self, event: MemoryMeter.Fitted) -> None:
        for key, value in event.overrides.items():
            self.draft.set(key, value)
        forms = self.query(SchemaForm)
        if forms:
            forms.first().set_values(event.overrides)  # in place: focus and scroll stay
        self._check_soon()  # the rules across fields (GRPO's batch and generations) see the new shape
        changed = ", ".join(f"{k} = {v}" for k, v in event.overrides.items()) or "nothing to change"
        self.notify(f"{changed}\n{event.explanation.splitlines()[-1]}", title="fit to GPU")

    def _check_soon(self) -> None:
        if self._pending_check is not None:
            self._pending_check.stop()
        self._pending_check = self.set_timer(self.CHECK_DELAY, self._check)

    def _check(self) -> None:
        self._pending_check = None
        error = self.draft.error()
        problem = self._widget_problem() or (error.render() if error else None)
        shown = self.query_one("#settings-problem", Static)
        shown.update(f"[b red]{escape(problem)}[/]" if problem else "")
        shown.display = bool(problem)
        self.query_one(MemoryMeter).update_for(None if error else self.draft.validate())

    def _widget_problem(self) -> str | None:
        """What the form or the reward picker holds that cannot go into the draft, in words."""
        for widget in (*self.query(SchemaForm), *self.query(RewardPicker)):
            problem = widget.problem()
            if problem:
                return problem
        return None

    def leave(self) -> str | None:
        error = self.draft.error()
        return self._widget_problem() or (error.render() if error else None)
