"""The rules of a pipeline whose stages name each other: [rounds] (a group of stages repeated N times)
and data.curated (a stage that trains on what an earlier curate stage kept).

`planned_stages` turns [[stages]] into the list of stages that really run: a [rounds] group of
consecutive stages appears once per round, round k's copies named `round-k-<name>` (so each has its
own folder under stages/, its own done mark and its own evaluation), and every reference inside the
group to a member of the group (data.curated, a reward model's `model`, distill's `teacher`, `train.start_from`) is
renamed to the same round's copy: round 2's DPO trains on round 2's curated pairs. Each round starts
from the model the previous one left, because a pipeline's policy passes from stage to stage anyway.

`curated_problems` checks data.curated against the stages that run: an earlier curate stage, read by
a technique that trains on answers or pairs. A name in [eval] stages that is a round group's member
stands for all its rounds (`expand_names`).

Stdlib only (it works on the validated schema objects and their dumps).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from smoltrain.config.schema import RunConfig, Stage

# Techniques that train on a curate stage's output, and what of it they read.
CURATED_READERS = {"sft": "best-of-K answers", "dpo": "best-vs-worst pairs", "kto": "best-vs-worst pairs",
                   "reward": "best-vs-worst pairs"}  # fmt: skip
_REFERENCE_KEYS = ("curated", "model", "teacher", "start_from")  # keys whose value may name another stage


@dataclass(frozen=True)
class PlannedStage:
    index: int  # its [[stages]] entry, for error messages
    name: str
    stage: Stage
    round: int | None = None  # 1, 2, ... inside a [rounds] group


def stage_name(index: int, stage: Stage) -> str:
    return stage.name or f"{index + 1}-{stage.technique}"


def round_name(round_number: int, name: str) -> str:
    return f"round-{round_number}-{name}"


def rounds_problems(cfg: RunConfig) -> list[tuple[str, str, str]]:
    """(key, what is wrong, hint) for a [rounds] section that does not name consecutive stages."""
    if cfg.rounds is None:
        return []
    names = [stage_name(i, s) for i, s in enumerate(cfg.stages)]
    if not cfg.stages:
        return [("rounds", "[rounds] repeats pipeline stages, and this preset has no [[stages]]",
                 "add [[stages]] entries, then name the ones to repeat in rounds.stages")]  # fmt: skip
    problems = []
    for i, name in enumerate(cfg.rounds.stages):
        if name not in names:
            problems.append((f"rounds.stages[{i}]", f"{name!r} is not a stage of this pipeline",
                             f"the stages are: {', '.join(names)}"))  # fmt: skip
    if problems:
        return problems
    positions = [names.index(n) for n in cfg.rounds.stages]
    if positions != list(range(positions[0], positions[0] + len(positions))):
        problems.append(("rounds.stages", f"{cfg.rounds.stages} are not consecutive stages, in their pipeline order",
                         "a round repeats one block of stages, e.g. curate then dpo, listed as they run"))  # fmt: skip
    return problems


def planned_stages(cfg: RunConfig) -> list[PlannedStage]:
    """Every stage that runs, in order, with [rounds] unrolled (call rounds_problems first)."""
    plain = [PlannedStage(i, stage_name(i, s), s) for i, s in enumerate(cfg.stages)]
    if cfg.rounds is None or rounds_problems(cfg):
        return plain
    group = set(cfg.rounds.stages)
    first = next(i for i, p in enumerate(plain) if p.name in group)
    members = plain[first : first + len(group)]
    unrolled = [
        PlannedStage(p.index, round_name(k, p.name), _renamed(p.stage, group, k), round=k)
        for k in range(1, cfg.rounds.times + 1)
        for p in members
    ]
    return plain[:first] + unrolled + plain[first + len(group) :]


def _renamed(stage: Stage, group: set[str], round_number: int) -> Stage:
    """The stage with its references to the group's members pointed at this round's copies."""

    def walk(value: Any, key: str = "") -> Any:
        if isinstance(value, dict):
            return {k: walk(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, key) for v in value]
        if key in _REFERENCE_KEYS and isinstance(value, str) and value in group:
            return round_name(round_number, value)
        return value

    dumped = stage.model_dump(exclude_unset=True)
    return Stage.model_validate(walk(dumped) | {"technique": stage.technique, "name": stage.name})


def expand_names(names: list[str], cfg: RunConfig) -> list[str]:
    """Stage names as a user writes them ([eval] stages): a round group's member stands for every round's copy."""
    if cfg.rounds is None:
        return names
    out: list[str] = []
    for name in names:
        if name in cfg.rounds.stages:
            out += [round_name(k, name) for k in range(1, cfg.rounds.times + 1)]
        else:
            out.append(name)
    return out


def curated_problems(stages: list[tuple[int, str, RunConfig]]) -> list[tuple[str, str, str]]:
    """(key, what is wrong, hint) for each data.curated that names no earlier curate stage, or is read by a
    technique that cannot train on answers or pairs."""
    problems = []
    earlier: dict[str, str] = {}  # name -> technique
    for index, name, cfg in stages:
        data, technique = cfg.data, cfg.train.technique
        source = data.curated if data is not None else None
        key = f"stages[{index}].data.curated"
        if source is not None:
            curates = [n for n, t in earlier.items() if t == "curate"]
            if technique not in CURATED_READERS:
                problems.append((key, f"a {technique} stage cannot train on curated data",
                                 f"curated data feeds {', '.join(CURATED_READERS)} stages; give this one a data.path"))  # fmt: skip
            elif earlier.get(source) != "curate":
                what = f"is a {earlier[source]} stage" if source in earlier else "is not an earlier stage"
                problems.append((key, f"{source!r} {what}, not a curate stage that runs before this one",
                                 f"name an earlier curate stage: {', '.join(curates) or 'none so far'}"))  # fmt: skip
        earlier[name] = technique
    # A stage repeated in rounds makes the same mistake once per round: said once.
    return list({(key, text): (key, text, hint) for key, text, hint in problems}.values())


def curate_only(stages: list[tuple[str, RunConfig]]) -> tuple[str, dict[str, Any]]:
    """`smoltrain curate PRESET`: (which stage, its config as a run of its own, to validate). The preset's first curate
    stage, sampling from the preset's model; a preset without one has its first stage's prompts sampled and
    scored by its rewards (a GRPO preset: "how often does my model get these right, and what would it keep")."""
    name, chosen = next(((n, c) for n, c in stages if c.train.technique == "curate"), stages[0])
    raw = chosen.model_dump(mode="json", exclude={"stages", "rounds", "eval", "name"}, exclude_unset=True)
    raw.setdefault("train", {})["technique"] = "curate"
    raw.setdefault("data", {}).pop("curated", None)
    return name, raw
