"""The Eval tab: did training make the model better? Per task and metric, each model's score, its change
from the one before and a verdict; the judge's win rates; the stages that made the model worse.

Reads eval/<subject>.json through smoltrain/evalresults.py, which holds the statistics and the words
(shared with the headless printer and the worker's warnings); this module only lays them out as rich
tables. `eval_renderables` builds the run screen's tab, `side_by_side` Compare's tables of several runs.
Both are pure functions of the results, so they are tested without a screen. Never imports torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from smoltrain.evalresults import (
    JudgeRow,
    MetricTable,
    SubjectResults,
    judge_rows,
    read_results,
    regression_warnings,
    tables,
    verdict,
)
from smoltrain.rundir import RunDir
from smoltrain.tui.runs import display_path

_VERDICT_STYLE = {"better": "bold green", "WORSE": "bold red"}
_INTERVAL = "± 95% interval"


def _title(table: MetricTable) -> str:
    direction = " (lower is better)" if not table.higher_is_better else ""
    return f"{table.task} · {table.metric}{direction}, {table.items} items"


def _new_table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", header_style="dim", expand=False)
    for column in columns:
        table.add_column(column)
    return table


def _verdict_text(word: str) -> Text:
    return Text(word, style=_VERDICT_STYLE.get(word, ""))


def metric_table(table: MetricTable) -> Table:
    """One task and metric: a row per model in pipeline order, its score, its change from the one before, the verdict."""
    out = _new_table(_title(table), "model", f"score {_INTERVAL}", "change from the one before", "verdict")
    for row in table.rows:
        change = f"{row.change.render(signed=True)} vs {row.against}" if row.change is not None else ""
        out.add_row(row.subject, row.score.render(), change, _verdict_text(verdict(row.change, table.higher_is_better)))
    return out


def judge_table(rows: list[JudgeRow]) -> Table:
    """The judge's pairwise verdicts: how often each model's answers beat the earlier one's."""
    out = _new_table("judge · win rate (0.5 = no preference)", "task", "model", "over", f"win rate {_INTERVAL}", "judge")
    out.caption, out.caption_justify = "win rate = (wins + half the ties) / items", "left"
    for row in rows:
        out.add_row(row.task, row.subject, row.against, row.win_rate.render(), row.judge)
    return out


def warning_text(message: str, hint: str) -> RenderableType:
    """A regression in yellow, its hint indented below it (the hint said just before is not said again)."""
    text = Text(f"warning: {message}", style="bold yellow")
    return Group(text, Padding(Text(f"hint: {hint}", style="yellow"), (0, 0, 0, 2))) if hint else text


def _warnings(results: list[SubjectResults]) -> list[RenderableType]:
    shown, said = [], ""
    for message, hint in regression_warnings(results):
        shown.append(warning_text(message, "" if hint == said else hint))
        said = hint
    return shown


def how_to_get_results(run_dir: Path) -> Text:
    return Text.assemble(
        ("No evaluation results for this run yet.\n", "bold"),
        "Add an [eval] section to the preset (see docs/eval.md) to score the base model and each stage "
        "as the run trains, or score this run now:\n",
        (f"  smoltrain eval {display_path(run_dir)}", "bold"),
    )  # fmt: skip


def eval_renderables(results: list[SubjectResults], run_dir: Path) -> list[RenderableType]:
    """What the Eval tab shows: the metric tables, the judge's table, the regressions; or how to get results."""
    if not results:
        return [how_to_get_results(run_dir)]
    shown: list[RenderableType] = [metric_table(table) for table in tables(results)]
    judged = judge_rows(results)
    if judged:
        shown.append(judge_table(judged))
    shown += _warnings(results)
    return shown


# --- Compare: several runs side by side ----------------------------------------------------------


def _subjects_in_order(runs: dict[str, list[SubjectResults]]) -> list[str]:
    order: dict[str, int] = {}
    for results in runs.values():
        for r in results:
            order[r.subject] = min(order.get(r.subject, r.order), r.order)
    return sorted(order, key=lambda subject: (order[subject], subject))


def _score_cells(runs: dict[str, list[SubjectResults]]) -> dict[tuple[str, str], dict[str, dict[str, Text]]]:
    """(task, metric) -> run -> subject -> its score, with the verdict on its change when there is one."""
    cells: dict[tuple[str, str], dict[str, dict[str, Text]]] = {}
    for run, results in runs.items():
        for table in tables(results):
            column = cells.setdefault((table.task, table.metric), {}).setdefault(run, {})
            for row in table.rows:
                word = verdict(row.change, table.higher_is_better)
                column[row.subject] = Text(row.score.render()).append(f" {word}" if word else "", _VERDICT_STYLE.get(word, ""))
    return cells


def side_by_side(runs: dict[str, list[SubjectResults]]) -> list[RenderableType]:
    """Per task and metric, a column per run and a row per model (base, then the stages): each score with its
    interval. Runs without results are named below the tables."""
    subjects = _subjects_in_order(runs)
    shown: list[RenderableType] = []
    for (task, metric), columns in _score_cells(runs).items():
        out = _new_table(f"{task} · {metric} (score {_INTERVAL})", "model", *runs)
        out.caption, out.caption_justify = "better / WORSE: than the model before it in that run", "left"
        for subject in subjects:
            if any(subject in column for column in columns.values()):
                out.add_row(subject, *(columns.get(run, {}).get(subject, Text("-", style="dim")) for run in runs))
        shown.append(out)
    missing = [run for run, results in runs.items() if not results]
    shown += [Text(f"{run}: no evaluation results (smoltrain eval RUN_DIR, or an [eval] section in its preset: "
                   f"see docs/eval.md)", style="dim") for run in missing]  # fmt: skip
    return shown


def stacked(renderables: list[RenderableType]) -> Group:
    """One renderable for a Static, with a blank line before each table and between the tables and the text."""
    out: list[RenderableType] = []
    for renderable in renderables:
        if out and (isinstance(renderable, Table) or isinstance(out[-1], Table)):
            out.append(Text(""))
        out.append(renderable)
    return Group(*out)


class EvalPanel(Static):
    """A run's evaluation results; `refresh_results()` reads its eval/ folder again."""

    DEFAULT_CSS = "EvalPanel { height: auto; padding: 1 2; }"

    def __init__(self, run_dir: Path, **kwargs: Any) -> None:
        super().__init__("", **kwargs)
        self.run_dir = run_dir
        self.results: list[SubjectResults] = []

    def refresh_results(self) -> None:
        self.results = read_results(RunDir(self.run_dir).eval)
        self.update(stacked(eval_renderables(self.results, self.run_dir)))
