"""The run screen, fed a recorded events file as if the worker were writing it: plots, samples,
progress, warnings and the end of the run update as lines arrive."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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
        status = str(screen.query_one("#status", Static).render()) + str(screen.query_one("#figures", Static).render())
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


# --- issue 14: defects 5, 7, 14 and the run screen's new figures ------------------------------------------------


def _stopped_dpo_run(workdir) -> Path:
    """The recorded DPO run, stopped on request at step 55: its events hold the worker's own stop warning."""
    from smoltrain.engine.events import RunFinished, StageFinished

    run_dir = install_run(workdir / "runs", "dpo-partial")
    with (run_dir / "events.jsonl").open("a") as f:
        for event in [Warning(message="stop requested: finishing this step, then saving", hint="stop again"),
                      StageFinished(stage=0, technique="dpo", step=55, output_dir=str(run_dir / "final")),
                      RunFinished(status="stopped", step=55, final_dir=str(run_dir / "final"), duration_s=260.0)]:
            f.write(event.to_json() + "\n")
    return run_dir


def _log_text(screen) -> str:
    from textual.widgets import RichLog

    return "\n".join(line.text for line in screen.query_one("#log-pane", RichLog).lines)


async def test_opening_a_finished_run_does_not_raise_its_old_warnings_again(workdir, monkeypatch):
    """Defect 5: its history is history even when the reader hands it over in several reads."""
    from smoltrain import rundir

    run_dir = _stopped_dpo_run(workdir)
    original = rundir.EventReader.read

    def in_small_reads(self):  # a reader that reads a few KiB at a time, as a long file may be read
        size = self.path.stat().st_size
        if size - self.offset > 2048:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read(2048)
            self.offset += len(chunk)
            *lines, self._pending = (self._pending + chunk).split(b"\n")
            return [e for line in lines if (e := rundir._parse_line(line)) is not None]
        return original(self)

    monkeypatch.setattr(rundir.EventReader, "read", in_small_reads)
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(12 * POLL_S)
        screen = app.screen
        assert screen.state.finished is not None and screen.state.finished.status == "stopped"
        assert not [n.message for n in app._notifications], "a past run's warnings and end are not news"
        assert screen.query_one(TabbedContent).active == "curves", "a past run opens on its curves"


async def test_a_resumed_run_keeps_its_step_and_moves_between_logs(workdir):
    """Defect 7: resuming showed '0% step 0/60' until the next log; progress events move the bar between logs,
    and the header and the Log say the same ETA."""
    from smoltrain.engine.events import Progress, RunStarted, StageStarted

    run_dir = install_run(workdir / "runs", "dpo-partial")
    lock = WorkerLock(RunDir(run_dir))
    lock.acquire()
    events = run_dir / "events.jsonl"
    recorded = [json.loads(line) for line in events.read_text().splitlines()]
    started = next(e for e in recorded if e["type"] == "run_started")
    stage = next(e for e in recorded if e["type"] == "stage_started")
    t = 1795269500.0
    resumed = RunStarted(**{**started, "time": t, "resumed_from": str(run_dir / "checkpoints" / "checkpoint-40")})
    with events.open("a") as f:
        f.write(resumed.to_json() + "\n" + StageStarted(**{**stage, "time": t + 1}).to_json() + "\n")
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        screen = app.screen
        status = str(screen.query_one("#status", Static).render())
        assert screen.query_one(ProgressBar).progress == 40 and "step 40/60" in status, status
        with events.open("a") as f:
            for i, step in enumerate((40, 41, 42, 43)):
                f.write(Progress(step=step, max_steps=60, time=t + 5 + 2 * i).to_json() + "\n")
        await pilot.pause(3 * POLL_S)
        status = str(screen.query_one("#status", Static).render())
        assert screen.query_one(ProgressBar).progress == 43 and "step 43/60" in status, status
        assert "ETA 00:34" in status, status  # 3 steps in 6 s, 17 to go
        assert screen._printer.state is screen.state, "the Log's lines and the header read one fold"
    lock.release()


async def test_the_status_keeps_memory_and_eta_at_80_columns(workdir):
    """Defect 14: at 80x24 the status line was cut before its memory figure (a GPU run's figures are long)."""
    from smoltrain.engine.events import Metrics

    run_dir = install_run(workdir / "runs", "grpo-pipeline", events=False)
    lock = WorkerLock(RunDir(run_dir))
    lock.acquire()
    lines = (DATA / "grpo-pipeline.events.jsonl").read_text().splitlines(keepends=True)
    gpu = Metrics(step=8, max_steps=10, stage=1, loss=0.5, tokens_per_second=12345.6, memory_allocated_gb=12.34,
                  gpu_util_pct=100.0, gpu_mem_used_gb=20.5, gpu_mem_total_gb=80.0, gpu_temp_c=71.0,
                  time=json.loads(lines[-9])["time"] + 1)  # fmt: skip
    (run_dir / "events.jsonl").write_text("".join(lines[:-8]) + gpu.to_json() + "\n")  # mid-way through GRPO
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        text = _visible(app.screen, "#status", "#figures")
        assert "stage 2/2 grpo" in text and "step 8/10" in text and "ETA 00:" in text, text
        assert "mem 12.3 GiB" in text and "GPU 100% 20.5/80.0 GiB 71°C" in text, text
        assert "elapsed" in text and "steps/s" in text, text
    lock.release()


def _visible(screen, *selectors: str) -> str:
    """What the terminal shows of these widgets: the screen's own rows where they are, cut where it cuts them."""
    rows = ["".join(segment.text for segment in strip) for strip in screen._compositor.render_strips()]
    shown = []
    for selector in selectors:
        region = screen._compositor.find_widget(screen.query_one(selector)).clip.intersection(
            screen.query_one(selector).region)  # fmt: skip
        shown += [rows[y][region.x : region.right] for y in range(region.y, region.bottom)]
    return "\n".join(shown)


async def test_gpu_figures_library_warnings_and_the_raw_worker_log(workdir):
    """The run's GPU figures next to its peak memory; the libraries' warnings in the Log; `l` shows worker.log."""
    from smoltrain.engine.events import Metrics

    gpu = Metrics(step=56, max_steps=60, loss=0.69, memory_allocated_gb=3.2, gpu_util_pct=87.0, gpu_mem_used_gb=20.5,
                  gpu_mem_total_gb=24.0, gpu_temp_c=71.0, time=1795269400.0)  # fmt: skip
    library = Warning(message="trl: All reward functions returned None", source="library")
    run_dir = install_run(workdir / "runs", "dpo-partial")
    lock = WorkerLock(RunDir(run_dir))
    lock.acquire()
    with (run_dir / "events.jsonl").open("a") as f:
        f.write(library.to_json() + "\n" + gpu.to_json() + "\n")
    (run_dir / "worker.log").write_text("".join(f"log line {i}\n" for i in range(800)))
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(2 * POLL_S)
        screen = app.screen
        text = _visible(screen, "#status", "#figures")
        assert "GPU 87%" in text and "20.5/24.0 GiB" in text and "71°C" in text, text
        await pilot.press("3")
        await pilot.pause()
        assert "library warning: trl: All reward functions returned None" in _log_text(screen)

        from textual.widgets import Log

        await pilot.press("l")
        await pilot.pause(2 * POLL_S)
        raw = screen.query_one("#raw-log", Log)
        assert raw.display and not screen.query_one("#log-pane").display
        assert raw.lines[-1] == "log line 799" and "log line 200" not in raw.lines and len(raw.lines) <= 500
        with (run_dir / "worker.log").open("a") as f:
            f.write("a new line\n")
        await pilot.pause(3 * POLL_S)
        assert raw.lines[-1] == "a new line", "it tails the file live"
        await pilot.press("l")
        await pilot.pause()
        assert screen.query_one("#log-pane").display and not raw.display
    lock.release()


async def test_a_curate_run_plots_its_reward_and_says_what_it_kept(workdir):
    """A recorded `smoltrain curate` run (800 prompts x 8 answers from round 1's DPO model of the demo)."""
    import shutil

    run_dir = workdir / "runs" / "curate"
    run_dir.mkdir(parents=True)
    shutil.copy(DATA / "curate.events.jsonl", run_dir / "events.jsonl")
    shutil.copy(DATA / "curate.config.toml", run_dir / "config.toml")
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(run_dir)
        await pilot.pause(3 * POLL_S)
        screen = app.screen
        assert {"reward mean ± std", "reward per function", "share of prompts without spread"} <= set(screen.query_one(PlotGrid).titles)
        samples = str(screen.query_one("#samples-text", Static).render())
        assert "best" in samples and "worst" in samples
        result = str(screen.query_one("#result-text", Static).render())
        assert "curated 800 prompts x 8 answers" in result and "pairs (best vs worst): 734 kept, 66 dropped" in result
        assert "LoRA adapter" not in result, "a curate run made data, not a model"
        assert "in a [rounds] section" in result  # the next step's text, not eaten as markup
        assert not screen.query_one("#exports").display
