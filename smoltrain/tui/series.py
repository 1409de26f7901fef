"""The curves of a run: which plots a RunState (smoltrain/runstate.py) has data for, and two runs overlaid.

Pure Python: never imports torch or textual (the plot widget draws these).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from smoltrain.runstate import RunState

_REWARD_FN = re.compile(r"^rewards/(.+)/mean$")


@dataclass(frozen=True)
class Line:
    label: str
    xs: list[float]
    ys: list[float]


@dataclass(frozen=True)
class Panel:
    title: str
    lines: list[Line]


def _line(state: RunState, label: str, key: str) -> Line | None:
    points = state.series.get(key)
    if not points:
        return None
    return Line(label, [x for x, _ in points], [y for _, y in points])


def _panel(state: RunState, title: str, pairs: list[tuple[str, str]]) -> Panel | None:
    lines = [line for label, key in pairs if (line := _line(state, label, key)) is not None]
    return Panel(title, lines) if lines else None


def panels(state: RunState) -> list[Panel]:
    """The plots this run has data for, most telling first."""
    reward_fns = sorted(m.group(1) for k in state.series if (m := _REWARD_FN.match(k.removeprefix("train:"))))
    wanted = [
        ("loss", [("train", "train:loss"), ("eval", "eval:eval_loss")]),
        ("reward mean ± std", [("mean", "train:reward"), ("+std", "train:reward+std"), ("-std", "train:reward-std")]),
        ("reward per function", [(fn, f"train:rewards/{fn}/mean") for fn in reward_fns]),
        ("DPO margin", [("train", "train:rewards/margins"), ("eval", "eval:eval_rewards/margins")]),
        ("DPO accuracy", [("train", "train:rewards/accuracies"), ("eval", "eval:eval_rewards/accuracies")]),
        ("reward model accuracy", [("train", "train:accuracy"), ("eval", "eval:eval_accuracy")]),
        ("learning rate", [("lr", "train:learning_rate")]),
        ("grad norm", [("grad norm", "train:grad_norm")]),
    ]
    return [panel for title, pairs in wanted if (panel := _panel(state, title, pairs)) is not None]


def overlay(a: RunState, b: RunState) -> list[Panel]:
    """Two runs' plots drawn together: every panel either has, each line labelled by its run."""
    by_title: dict[str, list[Line]] = {}
    for state in (a, b):
        for panel in panels(state):
            if panel.title == "reward mean ± std":  # the spread of two runs is unreadable together
                panel = Panel(panel.title, panel.lines[:1])
            by_title.setdefault(panel.title, []).extend(
                Line(f"{state.name}: {line.label}", line.xs, line.ys) for line in panel.lines
            )
    return [Panel(title, lines) for title, lines in by_title.items()]
