"""The Eval tab and Compare's evaluation tables, from eval/<subject>.json files written as evaluation
writes them (no model is scored): a pipeline base -> sft -> grpo on 200 held-out sums, where SFT
teaches them (0.01 -> 0.88) and GRPO unlearns half of it (0.39), and a reward judge that prefers
SFT's answers to GRPO's."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console, RenderableType
from textual.geometry import Region
from textual.pilot import Pilot
from textual.widget import Widget
from textual.widgets import TabbedContent

from smoltrain.engine.events import EvalResult
from smoltrain.evalresults import JudgeScores, SubjectResults, TaskScores, write_subject
from smoltrain.rundir import RunDir, WorkerLock
from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.screens.compare import CompareScreen
from smoltrain.tui.screens.run import POLL_S
from smoltrain.tui.widgets.eval_panel import EvalPanel, eval_renderables, side_by_side, stacked

from .conftest import DATA, install_run

pytestmark = pytest.mark.anyio

ITEMS = 200
TECHNIQUES = {"base": "base", "sft": "sft", "grpo": "grpo"}


def scored(subject: str, right: int, judge: tuple[str, list[float]] | None = None) -> SubjectResults:
    """A subject that answers the first `right` of the sums correctly (so the later stages' right answers
    are the earlier ones' too: paired), judged against `judge[0]` with those verdicts."""
    math = TaskScores(kind="prompts", metrics={"math_answer": [1.0] * right + [0.0] * (ITEMS - right)},
                      higher_is_better={"math_answer": True})  # fmt: skip
    judged = {"math": JudgeScores(judge="reward", against=judge[0], wins=judge[1])} if judge else {}
    return SubjectResults(subject=subject, technique=TECHNIQUES[subject], model=f"stages/{subject}/final",
                          order=list(TECHNIQUES).index(subject), tasks={"math": math}, judge=judged)  # fmt: skip


def verdicts(wins: int, ties: int) -> list[float]:
    return [1.0] * wins + [0.5] * ties + [0.0] * (ITEMS - wins - ties)


BASE = scored("base", 2)
SFT = scored("sft", 176, ("base", verdicts(166, 0)))
GRPO = scored("grpo", 78, ("sft", verdicts(70, 28)))  # win rate 0.42: the judge prefers SFT's answers


def write_results(run_dir: Path, *subjects: SubjectResults) -> None:
    for subject in subjects:
        write_subject(RunDir(run_dir).eval, subject)


def shown(widget: Widget) -> list[str]:
    """The widget's lines as the terminal draws them, all of them (scrolled into view or not)."""
    width, height = widget.outer_size
    return [strip.text.rstrip() for strip in widget.render_lines(Region(0, 0, width, height))]


def line_with(lines: list[str], *words: str) -> str:
    return next(line for line in lines if all(word in line for word in words))


def as_text(renderables: list[RenderableType]) -> str:
    console = Console(width=140, file=io.StringIO(), color_system=None)
    console.print(stacked(renderables))
    return console.file.getvalue()  # type: ignore[attr-defined]


async def open_eval_tab(app: SmoltrainApp, pilot: Pilot[None], run_dir: Path) -> EvalPanel:
    app.open_run(run_dir)
    await pilot.pause(2 * POLL_S)
    await pilot.press("6")
    await pilot.pause()
    assert app.screen.query_one(TabbedContent).active == "eval"
    return app.screen.query_one(EvalPanel)


async def test_the_eval_tab_shows_scores_changes_verdicts_the_judge_and_the_regressions(workdir):
    run_dir = install_run(workdir / "runs", "grpo-pipeline")
    write_results(run_dir, BASE, SFT, GRPO)
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(160, 60)) as pilot:
        lines = shown(await open_eval_tab(app, pilot, run_dir))

    assert line_with(lines, "math · math_answer, 200 items")
    assert "0.010 ±0.014" in line_with(lines, "base")
    sft = line_with(lines, " sft ", "0.880")
    assert "+0.870" in sft and "vs base" in sft and "better" in sft and "WORSE" not in sft
    grpo = line_with(lines, " grpo ", "0.390")
    assert "-0.490" in grpo and "vs sft" in grpo and "WORSE" in grpo
    assert "0.830" in line_with(lines, "math", " sft ", " base ", "reward")  # the judge's win rates
    assert "0.420" in line_with(lines, "math", " grpo ", " sft ", "reward")
    text = " ".join(line.strip() for line in lines)  # the warnings wrap: read them as one text
    assert "warning: eval: stage grpo scores below sft on math (math_answer -0.490" in text
    assert "warning: eval: the judge (reward) prefers sft's answers to stage grpo's on math" in text
    assert "hint: read the samples" in text  # GRPO's remedies (config/techniques.py)


async def test_the_eval_tab_says_how_to_get_results_when_there_are_none(workdir):
    run_dir = install_run(workdir / "runs", "grpo-pipeline")
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        text = " ".join(shown(await open_eval_tab(app, pilot, run_dir)))
    assert "No evaluation results for this run yet" in text
    assert "[eval] section" in text and "docs/eval.md" in text and "smoltrain eval runs/grpo-pipeline" in text


async def test_an_eval_result_event_brings_the_new_subject_in(workdir):
    """The worker scores a stage as soon as it has trained and says so with an EvalResult event: the
    open tab reads the new file then, without being opened again."""
    run_dir = install_run(workdir / "runs", "grpo-pipeline", events=False)
    lock = WorkerLock(RunDir(run_dir))  # this test is the worker, mid-run
    lock.acquire()
    lines = (DATA / "grpo-pipeline.events.jsonl").read_text().splitlines(keepends=True)
    events = run_dir / "events.jsonl"
    events.write_text("".join(lines[: len(lines) // 2]))
    write_results(run_dir, BASE, SFT)
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(160, 60)) as pilot:
        panel = await open_eval_tab(app, pilot, run_dir)
        assert not any(" grpo " in line for line in shown(panel))

        write_results(run_dir, GRPO)
        with events.open("a") as f:
            f.write(EvalResult(subject="grpo", path=str(RunDir(run_dir).eval / "grpo.json"), scores={}).to_json() + "\n")
        await pilot.pause(3 * POLL_S)
        assert "WORSE" in line_with(shown(panel), " grpo ", "0.390")
        assert app.screen.query_one(TabbedContent).active == "eval"
    lock.release()


async def test_compare_puts_two_runs_eval_results_side_by_side(recorded_runs):
    write_results(recorded_runs / "grpo-pipeline", BASE, SFT, GRPO)
    write_results(recorded_runs / "dpo-partial", scored("base", 2), scored("sft", 150))
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(CompareScreen([recorded_runs / "grpo-pipeline", recorded_runs / "dpo-partial"]))
        await pilot.pause()
        await pilot.press("2")
        await pilot.pause()
        lines = shown(app.screen.query_one("#compare-eval"))
        assert "loss" in app.screen.query_one("#plots").titles  # the curves are still there, on their tab

    header = line_with(lines, "model", "grpo-pipeline", "dpo-partial")
    assert header.index("grpo-pipeline") < header.index("dpo-partial")
    assert line_with(lines, "math · math_answer")
    base, sft, grpo = (line_with(lines, f" {subject} ") for subject in ("base", "sft", "grpo"))
    assert base.count("0.010 ±0.014") == 2
    assert "0.880" in sft and "0.750" in sft and sft.index("0.880") < sft.index("0.750")
    assert "0.390" in grpo and "WORSE" in grpo and grpo.rstrip(" │┃").endswith("-")  # dpo-partial has no grpo stage


def test_a_run_without_results_says_so_beside_the_others():
    text = as_text(side_by_side({"with": [BASE, SFT], "without": []}))
    assert "without: no evaluation results" in text
    assert "0.880 ±0.045 better" in line_with(text.splitlines(), " sft ")


def test_the_tab_lays_out_what_evalresults_computes():
    text = as_text(eval_renderables([BASE, SFT, GRPO], Path("runs/x")))
    assert "+0.870" in line_with(text.splitlines(), " sft ") and "WORSE" in line_with(text.splitlines(), " grpo ")
    assert "No evaluation results" in as_text(eval_renderables([], Path("runs/x")))
