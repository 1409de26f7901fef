"""The run screen, fed a recorded events file as if the worker were writing it: plots, samples,
progress, warnings and the end of the run update as lines arrive."""

from __future__ import annotations

import sys

import pytest
from textual.widgets import ProgressBar, Static, TabbedContent

from smoltrain.engine.events import Warning
from smoltrain.rundir import RunDir, WorkerLock
from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.screens.run import POLL_S, RunScreen
from smoltrain.tui.widgets.plots import PlotGrid

from .conftest import DATA, install_run

pytestmark = pytest.mark.anyio  # Pilot tests run on asyncio through anyio's pytest plugin


async def test_run_screen_follows_the_events_file(workdir):
    run_dir = install_run(workdir / "runs", "grpo-pipeline", events=False)
    lock = WorkerLock(RunDir(run_dir))  # this test is the worker: it holds the run's lock, as a worker does
    lock.acquire()
    lines = (DATA / "grpo-pipeline.events.jsonl").read_text().splitlines(keepends=True)
    sft_end = next(i for i, line in enumerate(lines) if '"stage_finished"' in line)
    events = run_dir / "events.jsonl"
    events.write_text("".join(lines[: sft_end - 2]))
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        screen = app.screen
        assert isinstance(screen, RunScreen)
        plots = screen.query_one(PlotGrid)
        assert plots.titles[:1] == ["loss"] and "reward mean ± std" not in plots.titles
        status = str(screen.query_one("#status", Static).render())
        assert "stage 1/2 sft" in status and "ETA" in status and "tok/s" in status and "mem" in status
        assert "4bit on" in str(screen.query_one("#active", Static).render())
        first = screen.query_one(ProgressBar).progress

        # the worker writes on: the GRPO stage, its samples, a warning, the end
        warning = Warning(message="reward is flat: every sample scores the same", hint="check the reward").to_json()
        with events.open("a") as f:
            f.write("".join(lines[sft_end - 2 : -1]) + warning + "\n")
        await pilot.pause(3 * POLL_S)
        assert {"reward mean ± std", "reward per function"} <= set(plots.titles)
        assert "stage 2/2 grpo" in str(screen.query_one("#status", Static).render())
        assert screen.query_one(ProgressBar).progress != first
        samples = str(screen.query_one("#samples-text", Static).render())
        assert "best" in samples and "worst" in samples and "reward" in samples
        assert any("reward is flat" in n.message for n in app._notifications)

        with events.open("a") as f:
            f.write(lines[-1])
        await pilot.pause(3 * POLL_S)
        assert screen.query_one(TabbedContent).active == "result"
        result = str(screen.query_one("#result-text", Static).render())
        assert "Done" in result and "/final" in result and "from_pretrained" in result
    lock.release()


async def test_a_run_whose_worker_died_without_a_word_reads_interrupted(workdir):
    """Events that stop mid-run, and no worker holds the run's lock: killed, or the machine went down.
    It must not show an ETA as if it trained on; it says how to carry on."""
    run_dir = install_run(workdir / "runs", "grpo-pipeline", events=False)
    lines = (DATA / "grpo-pipeline.events.jsonl").read_text().splitlines(keepends=True)
    (run_dir / "events.jsonl").write_text("".join(lines[: len(lines) // 2]))
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        screen = app.screen
        status = str(screen.query_one("#status", Static).render())
        assert "interrupted" in status and "ETA" not in status
        result = str(screen.query_one("#result-text", Static).render())
        assert "ended without a word" in result and f"smoltrain resume {run_dir}" in result
        assert screen.check_action("resume", ())


async def test_save_now_writes_the_request_file(workdir):
    run_dir = install_run(workdir / "runs", "dpo-partial")
    lock = WorkerLock(RunDir(run_dir))  # a live worker trains it
    lock.acquire()
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        assert "DPO margin" in app.screen.query_one(PlotGrid).titles
        await pilot.press("s")
        assert (run_dir / "control" / "save_now").exists()
    lock.release()


FAKE_SERVER = r'''
import json, sys
print(json.dumps({"ready": True, "model": "tiny + adapter", "device": "cpu"}), flush=True)
for line in sys.stdin:
    ask = json.loads(line)
    answers = {"base": "I do not know " + ask["prompt"], "tuned": "The glim."}
    for which, text in answers.items():
        for piece in text.split(" "):
            print(json.dumps({"id": ask["id"], "which": which, "text": piece + " "}), flush=True)
    print(json.dumps({"id": ask["id"], "done": True, **answers}), flush=True)
'''


async def test_result_shows_before_and_after_and_try_it_asks_both_models(workdir, monkeypatch):
    """The Result tab lays each policy stage's before/after answers side by side; "Try it" sends a typed
    prompt to the generation process and shows both answers (the process is a stand-in speaking the
    chat server's protocol: the real one is tested in tests/engine/test_chat.py)."""
    from smoltrain.engine.events import Sample
    from smoltrain.tui.widgets.try_it import TryIt

    run_dir = install_run(workdir / "runs", "grpo-pipeline")
    pairs = [("Who is the friend of the quax?", "A quax is a quax.", "The glim."), ("What do drakes eat?", "Drakes.", "Moonbeams.")]
    with (run_dir / "events.jsonl").open("a") as f:
        for prompt, before, after in pairs:
            f.write(Sample(step=60, stage=0, prompt=prompt, completion=before, label="before").to_json() + "\n")
            f.write(Sample(step=60, stage=0, prompt=prompt, completion=after, label="after").to_json() + "\n")
    server = workdir / "fake_server.py"
    server.write_text(FAKE_SERVER)
    monkeypatch.setattr(TryIt, "server_command", lambda self: [sys.executable, str(server)])
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        screen = app.screen
        assert screen.state.comparisons[0] == pairs[0:1] + pairs[1:2]
        await pilot.press("4")
        table = screen.query_one("#result-compare", Static).content
        assert [c.header for c in table.columns] == ["prompt", "before (the stage's starting model)", "after (trained)"]
        assert [list(c.cells) for c in table.columns] == [["[sft] " + p for p, _, _ in pairs],
                                                          [b for _, b, _ in pairs], [a for _, _, a in pairs]]  # fmt: skip

        await pilot.press("5")
        await pilot.click("#try-prompt")
        await pilot.press(*"hello there", "enter")
        for _ in range(50):
            await pilot.pause(0.1)
            if screen.try_it.answers["tuned"] == "The glim.":
                break
        assert screen.try_it.answers == {"base": "I do not know hello there", "tuned": "The glim."}
        tuned = str(screen.query_one("#try-tuned", Static).render())
        assert "The glim." in tuned and "hello there" in tuned


async def test_the_result_tab_exports_through_the_cli_and_shows_what_it_says(workdir):
    """A button runs `smoltrain export` in a child process; its words (here: a recorded run has no trained
    adapter in final/) reach the tab as they would a terminal."""
    from smoltrain.tui.widgets.export_pane import ExportPane

    run_dir = install_run(workdir / "runs", "grpo-pipeline")
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        await pilot.press("4")
        pane = app.screen.query_one(ExportPane)
        pane.run_export("merged")
        for _ in range(300):
            await pilot.pause(0.1)
            if pane.output[-1].startswith(("done", "export failed")):
                break
        assert pane.output[0] == f"$ smoltrain export {run_dir} --to merged"
        assert pane.output[-1] == "export failed (exit 2)"
        assert any(line.startswith("error: ") and "final" in line for line in pane.output), pane.output


async def test_an_ended_run_offers_only_what_it_can_do(workdir):
    """Issue 14, defect 6: a finished run offered save, stop and "back (run continues)"; a run that
    failed before saving anything offered a resume that would fail again the same way."""
    run_dir = install_run(workdir / "runs", "grpo-pipeline")  # a finished pipeline
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        screen = app.screen
        assert screen.state.ended
        shown = {b.binding.action: b.binding.description for b in screen.active_bindings.values() if b.enabled}
        assert "save_now" not in shown and "stop" not in shown and "leave" not in shown
        assert shown.get("back") == "Back"
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, RunScreen), "escape still goes back"

    failed = install_run(workdir / "runs", "dpo-partial", events=False)
    (failed / "events.jsonl").write_text(
        '{"type": "run_failed", "time": 1.0, "error_type": "DataError", "message": "x.jsonl: line 3: not valid JSON", '
        '"hint": "fix it", "user_error": true}\n')  # fmt: skip
    for checkpoint in failed.rglob("checkpoint-*"):
        if checkpoint.is_dir():
            import shutil

            shutil.rmtree(checkpoint)
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(120, 30)) as pilot:
        app.open_run(failed)
        await pilot.pause(2 * POLL_S)
        screen = app.screen
        notified: list[str] = []
        screen.notify = lambda message, **kw: notified.append(message)  # type: ignore[method-assign]
        await pilot.press("r")
        await pilot.pause()
        assert screen.handle is None, "no worker started to fail again"
        assert notified and "failed before it saved anything" in notified[-1] and "config.toml" in notified[-1]
