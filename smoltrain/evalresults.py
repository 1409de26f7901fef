"""Evaluation results: the files, the statistics, the table, and the regressions they show.

`smoltrain eval` and a run's [eval] section write one file per scored model, `eval/<subject>.json`
(the subject is "base" or a stage's name), holding every item's score, so any front end can compare
two models item by item without the ML stack:

    {"subject": "dpo", "technique": "dpo", "model": ".../stages/dpo/final", "order": 2, "time": ...,
     "tasks": {"math": {"kind": "prompts", "items": 200, "metrics": {"math_answer": [1.0, 0.0, null, ...]},
                        "higher_is_better": {"math_answer": true}, "answers": ["7 + 5 = 12.\n#### 12", ...]}},
     "judge": {"math": {"judge": "reward", "against": "sft", "wins": [1.0, 0.5, 0.0, ...]}}}

A score is a mean with its 95% interval (normal approximation, mean +- 1.96 standard errors); the
difference between two models is taken over the items both scored (paired), which is far tighter
than comparing two intervals. A later model scoring below the one before it beyond that interval is
a regression: `regressions()` names the stage and the task, with the practice's remedies
(config/techniques.py). A judge's verdicts are wins (1), ties (0.5) and losses (0): the win rate
is their mean, read with the same interval.

Stdlib only: the headless printer, the run screen and Compare read these files without torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrain.config.techniques import FACTS, facts

Z95 = 1.96
Values = Sequence[float | None]


# --- statistics -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float  # the 95% interval is mean +- half_width
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def render(self, signed: bool = False, digits: int = 3) -> str:
        if self.n == 0:
            return "-"
        value = f"{self.mean:+.{digits}f}" if signed else f"{self.mean:.{digits}f}"
        return f"{value} ±{self.half_width:.{digits}f}"


def estimate(values: Iterable[float | None]) -> Estimate:
    """The mean of the scored items (None: the metric did not apply) and its 95% interval."""
    xs = [float(v) for v in values if v is not None and math.isfinite(v)]
    n = len(xs)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = sum(xs) / n
    if n == 1:
        return Estimate(mean, math.inf, 1)
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return Estimate(mean, Z95 * math.sqrt(var / n), n)


def paired_difference(later: Values, earlier: Values) -> Estimate:
    """later - earlier over the items both scored, with the interval of the mean difference."""
    return estimate(None if a is None or b is None else a - b for a, b in zip(later, earlier))


# --- the files --------------------------------------------------------------------------------


@dataclass
class TaskScores:
    kind: str  # "harness" or "prompts"
    metrics: dict[str, list[float | None]]  # metric -> one score per item
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    answers: list[str] = field(default_factory=list)  # prompts tasks: each item's answer
    questions: list[str] = field(default_factory=list)  # prompts tasks: each item as shown

    @property
    def items(self) -> int:
        return max((len(v) for v in self.metrics.values()), default=len(self.answers))


@dataclass
class JudgeScores:
    judge: str  # what judged: a reward stage's name or folder, or a judge model
    against: str  # the subject the answers were compared with
    wins: list[float]  # 1 win, 0.5 tie, 0 loss, per item


@dataclass
class SubjectResults:
    subject: str  # "base" or a stage's name
    technique: str  # "base" or the stage's technique
    model: str  # what was loaded, for the record
    order: int  # position in the pipeline: base 0, then the stages in the order they run
    tasks: dict[str, TaskScores] = field(default_factory=dict)
    judge: dict[str, JudgeScores] = field(default_factory=dict)
    time: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject, "technique": self.technique, "model": self.model, "order": self.order,
            "time": self.time,
            "tasks": {name: vars(task) for name, task in self.tasks.items()},
            "judge": {name: vars(j) for name, j in self.judge.items()},
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SubjectResults:
        return cls(
            subject=str(data["subject"]), technique=str(data.get("technique", "")), model=str(data.get("model", "")),
            order=int(data.get("order", 0)), time=float(data.get("time", 0.0)),
            tasks={name: TaskScores(**task) for name, task in data.get("tasks", {}).items()},
            judge={name: JudgeScores(**j) for name, j in data.get("judge", {}).items()},
        )  # fmt: skip


def eval_folder(run_dir: Path) -> Path:
    return Path(run_dir) / "eval"


def write_subject(folder: Path, results: SubjectResults) -> Path:
    """eval/<subject>.json, written whole (a temporary file renamed over it: a reader never sees half).
    Tasks scored before and not again (an earlier `smoltrain eval --tasks ...`) are kept."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{results.subject}.json"
    try:
        before = SubjectResults.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        before = None
    if before is not None:
        results.tasks = {**before.tasks, **results.tasks}
        results.judge = {**{k: v for k, v in before.judge.items() if k not in results.tasks}, **results.judge}
    partial = path.with_suffix(".json.partial")
    partial.write_text(json.dumps(results.to_json(), ensure_ascii=False), encoding="utf-8")
    partial.replace(path)
    return path


def read_results(folder: Path) -> list[SubjectResults]:
    """Every subject's results in the folder, in pipeline order; unreadable files are skipped."""
    found = []
    for path in sorted(Path(folder).glob("*.json")) if Path(folder).is_dir() else []:
        try:
            found.append(SubjectResults.from_json(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError, KeyError, TypeError):
            continue
    return sorted(found, key=lambda r: (r.order, r.subject))


# --- reading them -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    subject: str
    score: Estimate
    change: Estimate | None  # against the previous subject that scored this metric
    against: str | None


@dataclass(frozen=True)
class MetricTable:
    task: str
    metric: str
    items: int
    higher_is_better: bool
    rows: list[Row]


def tables(results: list[SubjectResults]) -> list[MetricTable]:
    """One table per task and metric: each subject's score, and its change from the subject before it."""
    out = []
    for task, metric in _task_metrics(results):
        rows: list[Row] = []
        previous: tuple[str, list[float | None]] | None = None
        higher = True
        items = 0
        for r in results:
            scores = r.tasks.get(task)
            if scores is None or metric not in scores.metrics:
                continue
            values = scores.metrics[metric]
            higher = scores.higher_is_better.get(metric, True)
            items = max(items, len(values))
            change = paired_difference(values, previous[1]) if previous else None
            rows.append(Row(r.subject, estimate(values), change, previous[0] if previous else None))
            previous = (r.subject, values)
        out.append(MetricTable(task, metric, items, higher, rows))
    return out


def _task_metrics(results: list[SubjectResults]) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for r in results:
        for task, scores in r.tasks.items():
            for metric in scores.metrics:
                if (task, metric) not in seen:
                    seen.append((task, metric))
    return seen


@dataclass(frozen=True)
class JudgeRow:
    task: str
    subject: str
    against: str
    judge: str
    win_rate: Estimate


def judge_rows(results: list[SubjectResults]) -> list[JudgeRow]:
    return [JudgeRow(task, r.subject, j.against, j.judge, estimate(j.wins)) for r in results for task, j in r.judge.items()]


@dataclass(frozen=True)
class Regression:
    subject: str
    technique: str
    against: str
    task: str
    metric: str
    change: Estimate

    @property
    def message(self) -> str:
        return (f"eval: stage {self.subject} scores below {self.against} on {self.task} ({self.metric} "
                f"{self.change.render(signed=True)}, beyond the 95% interval): the stage made the model worse at it")  # fmt: skip

    @property
    def hint(self) -> str:
        return remedy(self.technique)



def regressions(results: list[SubjectResults]) -> list[Regression]:
    """Each subject that scores worse than the one before it on a metric, beyond the paired interval."""
    technique = {r.subject: r.technique for r in results}
    found = []
    for table in tables(results):
        for row in table.rows:
            if row.change is not None and row.against is not None and verdict(row.change, table.higher_is_better) == "WORSE":
                found.append(Regression(row.subject, technique.get(row.subject, ""), row.against, table.task,
                                        table.metric, row.change))  # fmt: skip
    return found


def judge_regressions(results: list[SubjectResults]) -> list[JudgeRow]:
    """Stages the judge prefers the earlier answers to, beyond the interval (win rate below 0.5)."""
    return [row for row in judge_rows(results) if row.win_rate.n >= 2 and row.win_rate.high < 0.5]


def verdict(change: Estimate | None, higher_is_better: bool) -> str:
    """"better" or "WORSE" where the interval of the change excludes zero; "" within it, or with nothing to compare."""
    if change is None or change.n < 2:
        return ""
    better = change.low > 0 if higher_is_better else change.high < 0
    worse = change.high < 0 if higher_is_better else change.low > 0
    return "better" if better else "WORSE" if worse else ""


def remedy(technique: str) -> str:
    """What to try when evaluation finds a stage of this technique made the model worse ("" when none is known)."""
    return facts(technique).regression_remedy if technique in FACTS else ""  # "base" has none


def judge_regression_message(row: JudgeRow) -> str:
    return (f"eval: the judge ({row.judge}) prefers {row.against}'s answers to stage {row.subject}'s on "
            f"{row.task} (win rate {row.win_rate.render()}, below 0.5 beyond the 95% interval)")  # fmt: skip


def regression_warnings(results: list[SubjectResults]) -> list[tuple[str, str]]:
    """Every regression the results show, scored or judged, as (message, hint) in the worker's words."""
    technique = {r.subject: r.technique for r in results}
    found = [(r.message, r.hint) for r in regressions(results)]
    found += [(judge_regression_message(row), remedy(technique.get(row.subject, ""))) for row in judge_regressions(results)]
    return found


def render(results: list[SubjectResults]) -> list[str]:
    """The tables as text lines: per task and metric, each model's score, and its change from the one before."""
    if not results:
        return ["no evaluation results yet"]
    lines: list[str] = []
    width = max(len(r.subject) for r in results) + 2
    for table in tables(results):
        direction = "" if table.higher_is_better else " (lower is better)"
        lines.append(f"{table.task} · {table.metric}{direction}, {table.items} items (± 95% interval)")
        for row in table.rows:
            change = f"   {row.change.render(signed=True)} vs {row.against}" if row.change else ""
            flag = verdict(row.change, table.higher_is_better)
            lines.append(f"  {row.subject:<{width}}{row.score.render():<16}{change}{'  ' + flag if flag else ''}")
    judged = judge_rows(results)
    if judged:
        lines.append("judge · win rate (wins + half the ties; 0.5 = no preference)")
        for j in judged:
            lines.append(f"  {j.subject} over {j.against} on {j.task}: {j.win_rate.render()}  (judge: {j.judge})")
    return lines
