"""The settings step: a form generated from the config schema (LoRA, learning rate, steps or
epochs, batch and accumulation, max length, 4-bit, checkpointing, kernels, and the technique's own
knobs), each field with its help from the schema; for GRPO a reward picker with weights; and the
memory meter. Never imports torch.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

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
]  # fmt: skip
TECHNIQUE_FIELDS = {
    "sft": ["sft.loss_on", "sft.packing"],
    "reward": ["reward.center_rewards_coefficient"],
    "dpo": ["dpo.beta", "dpo.loss_type"],
    "grpo": ["grpo.num_generations", "grpo.max_completion_length", "grpo.temperature", "grpo.beta", "grpo.loss_type"],
}


class SettingsStep(Step):
    TITLE = "Settings"
    EXPLAIN = (
        "How it trains. The defaults suit a first run; micro_batch_size and max_length are the memory knobs, "
        "grad_accum raises the effective batch for free. Set max_steps for a quick try, epochs for a real run. "
        "Tab moves between fields."
    )

    def compose(self) -> ComposeResult:
        yield from self.compose_explanation()
        yield MemoryMeter(id="memory")
        yield Static("", id="settings-problem")
        yield Vertical(id="settings-form")

    def enter(self) -> None:
        # The fields depend on the technique: rebuild the form, once the old one is gone (same ids).
        self.run_worker(self._rebuild(), exclusive=True, group="settings-form")

    async def _rebuild(self) -> None:
        holder = self.query_one("#settings-form", Vertical)
        await holder.remove_children()
        fields = COMMON_FIELDS + TECHNIQUE_FIELDS[self.draft.technique]
        values = {key: self.draft.get(key) for key in fields if self.draft.get(key) is not None}
        widgets = [SchemaForm(fields, values, id="form")]
        if self.draft.technique == "grpo":
            widgets.append(RewardPicker(self.draft.raw.get("grpo", {}).get("rewards", []), id="rewards"))
        await holder.mount_all(widgets)
        self._check()

    def on_schema_form_changed(self, event: SchemaForm.Changed) -> None:
        self.draft.set(event.key, event.value)
        self._check()

    def on_reward_picker_changed(self, event: RewardPicker.Changed) -> None:
        self.draft.section("grpo")["rewards"] = event.rewards
        self._check()

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
        self.enter()  # the form shows the new values
        changed = ", ".join(f"{k} = {v}" for k, v in event.overrides.items()) or "nothing to change"
        self.notify(f"{changed}\n{event.explanation.splitlines()[-1]}", title="fit to GPU")

    def _check(self) -> None:
        error = self.draft.error()
        problem = self._form_problem() or (error.render() if error else None)
        self.query_one("#settings-problem", Static).update(f"[b red]{problem}[/]" if problem else "")
        self.query_one(MemoryMeter).update_for(None if error else self.draft.validate())

    def _form_problem(self) -> str | None:
        forms = self.query(SchemaForm)
        return forms.first().problem() if forms else None

    def leave(self) -> str | None:
        error = self.draft.error()
        return self._form_problem() or (error.render() if error else None)
