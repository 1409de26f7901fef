"""GRPO's reward picker: tick the reward functions to use, give each a weight and its one option.

Covers the built-in rewards a form can set (exact_match, math_answer, format, length, json);
reward_model and python rewards name files and are kept as the preset has them. The picked list
is posted as `RewardPicker.Changed(rewards)`, in the shape of [[grpo.rewards]]. Never imports torch.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label

# name -> (its option key, the option's placeholder, one line on what it rewards)
PICKABLE: dict[str, tuple[str | None, str, str]] = {
    "math_answer": (None, "", "the number after #### or in \\boxed{} equals the answer column"),
    "exact_match": (None, "", "the answer equals the answer column (numbers normalised)"),
    "format": ("pattern", "regular expression", "the whole completion matches a pattern"),
    "length": ("max_chars", "max characters", "completions longer than max_chars lose reward"),
    "json": (None, "", "the completion is valid JSON"),
}
DEFAULT_PATTERN = r"(?s).*#### *-?[\d,.]+\s*"


class RewardPicker(Widget):
    DEFAULT_CSS = """
    RewardPicker { height: auto; }
    RewardPicker Horizontal { height: auto; }
    RewardPicker Checkbox { width: 18; }
    RewardPicker .weight { width: 12; }
    RewardPicker .option { width: 1fr; }
    RewardPicker .what { color: $text-muted; padding: 0 0 0 4; }
    """

    class Changed(Message):
        def __init__(self, rewards: list[dict[str, Any]]) -> None:
            super().__init__()
            self.rewards = rewards

    def __init__(self, rewards: list[dict[str, Any]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._given = {r["name"]: r for r in rewards}
        self._kept = [r for r in rewards if r["name"] not in PICKABLE]

    def compose(self) -> ComposeResult:
        yield Label("Rewards (tick one or more; the total is the weighted sum):")
        for name, (option, placeholder, what) in PICKABLE.items():
            given = self._given.get(name, {})
            with Horizontal():
                yield Checkbox(name, bool(given), id=f"reward-{name}")
                yield Input(str(given.get("weight", 1.0)), type="number", id=f"weight-{name}", classes="weight",
                            tooltip="weight")  # fmt: skip
                if option:
                    default = DEFAULT_PATTERN if option == "pattern" else ""
                    yield Input(str(given.get(option, default)), placeholder=placeholder, id=f"option-{name}",
                                classes="option")  # fmt: skip
            yield Label(what, classes="what")
        for kept in self._kept:
            yield Label(f"kept from the preset: {kept['name']} (weight {kept.get('weight', 1.0)})")

    def rewards(self) -> list[dict[str, Any]]:
        picked: list[dict[str, Any]] = []
        for name, (option, _, _) in PICKABLE.items():
            if not self.query_one(f"#reward-{name}", Checkbox).value:
                continue
            reward: dict[str, Any] = {"name": name}
            try:
                reward["weight"] = float(self.query_one(f"#weight-{name}", Input).value)
            except ValueError:
                reward["weight"] = 1.0
            if option:
                text = self.query_one(f"#option-{name}", Input).value.strip()
                if text:
                    reward[option] = int(text) if option == "max_chars" and text.isdigit() else text
            picked.append(reward)
        return picked + self._kept

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.rewards()))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.rewards()))
