"""GRPO's reward picker: tick the reward functions to use, give each a weight and its options.

Covers every reward the schema knows (config.schema.RewardFunction): the built-in ones, a trained
reward model (its run folder) and your own Python function (its file and name). A second reward of
the same name in a preset is kept as it is. The picked list is posted as `RewardPicker.Changed(rewards)`,
in the shape of [[grpo.rewards]]; the options go in as typed, so the schema judges them (a pattern
that does not compile names its key). What cannot go into a preset at all (a weight that is not a
number, no reward ticked) is marked in place and named by `problem()`, which keeps the wizard on the
step, as SchemaForm does. Never imports torch.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Static

from smoltrain.tui.widgets.schema_form import FieldInput


class Pickable(NamedTuple):
    options: tuple[tuple[str, str], ...]  # (the option's key in the schema, its placeholder)
    what: str  # one line on what it rewards


PICKABLE: dict[str, Pickable] = {
    "math_answer": Pickable((), "the number after #### or in \\boxed{} equals the answer column"),
    "exact_match": Pickable((), "the answer equals the answer column (numbers normalised)"),
    "format": Pickable((("pattern", "regular expression"),), "the whole completion matches a pattern"),
    "length": Pickable((("max_chars", "max characters"),), "completions longer than max_chars lose reward"),
    "json": Pickable((), "the completion is valid JSON"),
    "reward_model": Pickable((("model", "a reward run's folder, or its final/"),), "a trained reward model's score"),
    "python": Pickable((("path", "file.py"), ("function", "function name")),
                       "your own function(prompts, completions, **kwargs) -> one score each, from a .py file"),
}  # fmt: skip
OPTION_DEFAULTS = {"pattern": r"(?s).*#### *-?[\d,.]+\s*"}
NO_REWARD = "grpo rewards: tick at least one reward (the total reward is their weighted sum)"


class Tick(Checkbox):
    """A checkbox whose box is empty when unticked: the stock one draws an X in both states, told apart
    only by colour, which some themes make hard to see."""

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = "X" if self.value else " "
        return super()._button


class RewardPicker(Widget):
    DEFAULT_CSS = """
    RewardPicker { height: auto; }
    RewardPicker .title { padding: 1 0 0 0; text-style: bold; }
    RewardPicker .reward { height: 1; }
    RewardPicker Tick { width: 19; }
    RewardPicker .weight { width: 8; margin: 0 1 0 0; }
    RewardPicker .option { width: 1fr; margin: 0 1 0 0; }
    RewardPicker .what { color: $text-muted; padding: 0 0 0 4; }
    RewardPicker .what.error { color: $error; }
    """

    class Changed(Message):
        def __init__(self, rewards: list[dict[str, Any]]) -> None:
            super().__init__()
            self.rewards = rewards

    def __init__(self, rewards: list[dict[str, Any]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._given: dict[str, dict[str, Any]] = {}
        self._kept: list[dict[str, Any]] = []  # a second reward of a name already shown
        for reward in rewards:
            if reward["name"] in self._given or reward["name"] not in PICKABLE:
                self._kept.append(reward)
            else:
                self._given[reward["name"]] = reward

    def compose(self) -> ComposeResult:
        yield Label("Rewards (tick one or more; the total is the weighted sum):", classes="title")
        for name, pickable in PICKABLE.items():
            given = self._given.get(name, {})
            with Horizontal(classes="reward"):
                yield Tick(name, bool(given), id=f"reward-{name}", compact=True)
                yield FieldInput(str(given.get("weight", 1.0)), id=f"weight-{name}", classes="weight", compact=True,
                            tooltip="weight")  # fmt: skip
                for key, placeholder in pickable.options:
                    yield FieldInput(str(given.get(key, OPTION_DEFAULTS.get(key, ""))), placeholder=placeholder,
                                id=f"option-{name}-{key}", classes="option", compact=True, tooltip=placeholder)  # fmt: skip
            yield Static(pickable.what, id=f"what-{name}", classes="what", markup=False)
        for kept in self._kept:
            yield Label(f"kept from the preset: {kept['name']} (weight {kept.get('weight', 1.0)})", markup=False)

    def _ticked(self) -> list[str]:
        return [name for name in PICKABLE if self.query_one(f"#reward-{name}", Tick).value]

    def _weight(self, name: str) -> float | str:
        """The weight typed for `name`: a number, or the text as typed when it is not one."""
        text = self.query_one(f"#weight-{name}", Input).value.strip()
        try:
            weight = float(text)
        except ValueError:
            return text
        return weight if math.isfinite(weight) else text

    def _errors(self) -> dict[str, str]:
        """Ticked reward -> what is wrong with its weight, in words."""
        errors = {}
        for name in self._ticked():
            weight = self._weight(name)
            if isinstance(weight, str):
                shown = repr(weight) if weight else "nothing"
                errors[name] = f"the weight must be a number, such as 1.0 or 0.5 (you entered {shown})"
        return errors

    def problem(self) -> str | None:
        """No reward ticked, or the first ticked one whose weight is not a number; None when all is usable."""
        if not self._ticked() and not self._kept:
            return NO_REWARD
        for name, error in self._errors().items():
            return f"reward {name}: {error}; fix it, or press escape to go back"
        return None

    def rewards(self) -> list[dict[str, Any]]:
        picked: list[dict[str, Any]] = []
        for name in self._ticked():
            shown = {"name", "weight", *(key for key, _ in PICKABLE[name].options)}
            reward: dict[str, Any] = {k: v for k, v in self._given.get(name, {}).items() if k not in shown}
            reward.update(name=name, weight=self._weight(name))  # a weight that is not a number: the schema says so too
            for key, _ in PICKABLE[name].options:
                text = self.query_one(f"#option-{name}-{key}", Input).value.strip()
                if text:
                    reward[key] = int(text) if key == "max_chars" and text.isdigit() else text
            picked.append(reward)
        return picked + self._kept

    def _changed(self) -> None:
        errors = self._errors()
        for name, pickable in PICKABLE.items():
            self.query_one(f"#weight-{name}", Input).set_class(name in errors, "-invalid")
            what = self.query_one(f"#what-{name}", Static)
            what.set_class(name in errors, "error")
            what.update(errors.get(name, pickable.what))
        self.post_message(self.Changed(self.rewards()))

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        self._changed()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed()
