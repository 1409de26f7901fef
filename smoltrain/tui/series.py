"""The curves of a run: which plots a RunState (smoltrain/runstate.py) has data for, and any number of
runs overlaid.

A line is one series of one stage of one run: a pipeline's stages are separate lines (SFT's loss and
GRPO's loss are different quantities, never joined), laid end to end on the run's step axis, with
markers where a stage began, a checkpoint was saved, the run stopped or resumed. `Panel.only(stage)`
is one stage on its own, in its own steps.

Pure Python: never imports torch or textual (the plot widget draws these).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from smoltrain.runstate import Mark, RunState

_REWARD_FN = re.compile(r"^rewards/(.+)/mean$")


@dataclass(frozen=True)
class Line:
    label: str  # the series: "train", "eval", a reward function
    xs: list[float]
    ys: list[float]
    run: str = ""  # whose line, where several runs share a plot
    stage: str = ""  # the stage it belongs to, e.g. "2 grpo"
    start: float = 0.0  # where that stage began on the run's step axis


@dataclass(frozen=True)
class Marker:
    x: float
    kind: str  # "stage", "checkpoint", "stopped", "resumed" (runstate.Mark)
    label: str = ""
    run: str = ""
    stage: str = ""
    start: float = 0.0


@dataclass(frozen=True)
class Panel:
    title: str
    lines: list[Line]
    markers: list[Marker] = field(default_factory=list)

    @property
    def stages(self) -> list[str]:
        return list(dict.fromkeys(line.stage for line in self.lines))

    def only(self, stage: str) -> Panel:
        """This stage's lines and markers on their own, in the stage's own steps."""
        lines = [replace(line, xs=[x - line.start for x in line.xs], start=0.0)
                 for line in self.lines if line.stage == stage]  # fmt: skip
        markers = [replace(m, x=m.x - m.start, start=0.0) for m in self.markers if m.stage == stage and m.kind != "stage"]
        return Panel(self.title, lines, markers)


def stage_label(state: RunState, index: int) -> str:
    technique = state.stages[index] if index < len(state.stages) else "?"
    return f"{index + 1} {technique}"


def _lines(state: RunState, label: str, key: str) -> list[Line]:
    return [
        Line(label, [x for x, _ in points], [y for _, y in points], state.name, stage_label(state, stage),
             state.stage_starts.get(stage, 0.0))
        for stage, curves in sorted(state.stage_series.items())
        if (points := curves.get(key))
    ]


def _markers(state: RunState) -> list[Marker]:
    def marker(mark: Mark) -> Marker:
        stage = stage_label(state, mark.stage)
        return Marker(mark.x, mark.kind, stage if mark.kind == "stage" else mark.label, state.name, stage,
                      state.stage_starts.get(mark.stage, 0.0))  # fmt: skip

    return [marker(mark) for mark in state.marks]


_ANY, _KTO, _NOT_KTO = "any stage", "kto stages", "other stages"  # which stages' lines a panel shows
_DISTILL = "distill stages"  # SFT and GRPO log entropy and lengths too; only distillation's are plotted


def _shown(line: Line, which: str) -> bool:
    if which == _DISTILL:
        return _technique(line.stage) == "distill"
    return which == _ANY or (_technique(line.stage) == "kto") == (which == _KTO)


def panels(state: RunState) -> list[Panel]:
    """The plots this run has data for, most telling first."""
    keys = {key for curves in state.stage_series.values() for key in curves}
    reward_fns = sorted(m.group(1) for k in keys if (m := _REWARD_FN.match(k.removeprefix("train:"))))
    # KTO logs some of DPO's names (rewards/margins, rewards/chosen) for its own quantities: its stages'
    # lines go to KTO's panels, every other stage's to DPO's.
    wanted: list[tuple[str, list[tuple[str, str]], str]] = [
        ("loss", [("train", "train:loss"), ("eval", "eval:eval_loss")], _ANY),
        ("reward mean ± std", [("mean", "train:reward"), ("+std", "train:reward+std"), ("-std", "train:reward-std")], _ANY),
        ("reward per function", [(fn, f"train:rewards/{fn}/mean") for fn in reward_fns], _ANY),
        # GRPO's groups and curate's prompts whose answers all scored alike: nothing to learn (or to pair) there.
        ("share of prompts without spread", [("share", "train:frac_reward_zero_std")], _ANY),
        ("DPO margin", [("train", "train:rewards/margins"), ("eval", "eval:eval_rewards/margins")], _NOT_KTO),
        ("DPO accuracy", [("train", "train:rewards/accuracies"), ("eval", "eval:eval_rewards/accuracies")], _NOT_KTO),
        ("KTO margin (desirable - undesirable)", [("train", "train:rewards/margins"), ("eval", "eval:eval_rewards/margins")],
         _KTO),
        ("KTO rewards", [("desirable", "train:rewards/chosen"), ("undesirable", "train:rewards/rejected"),
                         ("eval desirable", "eval:eval_rewards/chosen"), ("eval undesirable", "eval:eval_rewards/rejected")],
         _KTO),
        ("KTO KL", [("train", "train:kl"), ("eval", "eval:eval_kl")], _KTO),
        # RLOO's (and GRPO's, where beta > 0) per-token KL to the reference: what the beta penalty holds back.
        ("KL to the reference", [("train", "train:kl"), ("eval", "eval:eval_kl")], _NOT_KTO),
        ("student entropy (per token)", [("train", "train:entropy"), ("eval", "eval:eval_entropy")], _DISTILL),
        ("student answer length (tokens)", [("mean", "train:completions/mean_length"),
                                            ("longest", "train:completions/max_length")], _DISTILL),
        ("answers cut at max_completion_length", [("share", "train:completions/clipped_ratio")], _DISTILL),
        ("reward model accuracy", [("train", "train:accuracy"), ("eval", "eval:eval_accuracy")], _ANY),
        ("learning rate", [("lr", "train:learning_rate")], _ANY),
        ("grad norm", [("grad norm", "train:grad_norm")], _ANY),
    ]  # fmt: skip
    markers = _markers(state)
    found = []
    for title, pairs, which in wanted:
        lines = [line for label, key in pairs for line in _lines(state, label, key) if _shown(line, which)]
        if lines:
            stages = {line.stage for line in lines}
            found.append(Panel(title, lines, [m for m in markers if m.stage in stages]))
    return found


def _technique(stage: str) -> str:
    return stage.partition(" ")[2] or stage


def overlay(*states: RunState) -> list[Panel]:
    """Several runs' plots drawn together: every panel any of them has, each line tagged with its run.
    Stages go by technique ("dpo", not "3 dpo"), so one stage on its own lines up the runs' DPO stages."""
    by_title: dict[str, Panel] = {}
    for state in states:
        for panel in panels(state):
            lines = [replace(line, stage=_technique(line.stage)) for line in panel.lines]
            if panel.title == "reward mean ± std":  # the spread of several runs is unreadable together
                lines = [line for line in lines if line.label == "mean"]
            markers = [replace(m, stage=_technique(m.stage), label=_technique(m.label)) for m in panel.markers]
            seen = by_title.get(panel.title, Panel(panel.title, []))
            by_title[panel.title] = Panel(panel.title, seen.lines + lines, seen.markers + markers)
    return list(by_title.values())
