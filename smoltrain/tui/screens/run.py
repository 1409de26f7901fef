"""The run screen: one run, live from its events (or as it stands, for a past run).

A timer reads what the worker appended to events.jsonl every POLL_S seconds, feeds a RunState and
redraws the progress line, the plots, the GRPO samples and the log; the Result tab adds each policy
stage's before/after answers side by side and the exports; Eval shows what evaluation found
(widgets/eval_panel.py, read again when an EvalResult event arrives); "Try it" asks the trained model and its
starting model a prompt of the user's (widgets/try_it.py; generation in a child process) (the headless printer's own
lines, so both front ends word things the same). Keys: save a checkpoint now, stop and save (after a
confirm), back to home; leaving never stops the run, and the app asks before quitting over one. The Log tab
is the headless printer's lines on this screen's own RunState (one fold: the header and the Log say the same ETA);
`l` there swaps it for worker.log as written (its last LOG_LINES lines, tailed live). The status says the step,
ETA and memory first (they must survive 80 columns), then the GPU's live figures, elapsed time and pace.
History is not news: what the events file held when the screen opened never raises a notice, however many
reads it takes.

Never imports torch: training runs in the worker child process started by smoltrain.runner.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from rich.markup import escape
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import (
    Footer,
    Header,
    Log,
    ProgressBar,
    RichLog,
    Static,
    TabbedContent,
    TabPane,
)

from smoltrain import runner
from smoltrain.engine.events import EvalResult, RunFailed, Sample, Warning
from smoltrain.errors import SmoltrainError
from smoltrain.headless import Printer
from smoltrain.rundir import EventReader, LineReader, RunDir, running_worker
from smoltrain.runstate import RunState, curated_lines, format_duration
from smoltrain.tui.runs import display_path
from smoltrain.tui.screens.dialogs import ChoiceDialog
from smoltrain.tui.series import panels
from smoltrain.tui.widgets.eval_panel import EvalPanel
from smoltrain.tui.widgets.export_pane import ExportPane
from smoltrain.tui.widgets.plots import PlotGrid
from smoltrain.tui.widgets.try_it import TryIt

POLL_S = 0.2  # events reach the plots within this plus one redraw
LOG_LINES = 500  # of worker.log, in the raw view
_LOG_TAIL_BYTES = 256 * 1024  # read to find them
_INTERRUPTED = "WorkerDied"  # the RunFailed the screen makes up for a worker that died without an end event


class _LogStream:
    """The headless printer's output, line by line into the log pane; warnings and errors stand out, the
    libraries' own warnings less."""

    def __init__(self, log: Callable[[], RichLog]) -> None:
        self.log, self._buffer = log, ""

    def write(self, text: str) -> None:
        self._buffer += text.replace("\r\033[K", "")
        *lines, self._buffer = self._buffer.split("\n")
        for line in lines:
            self.log().write(Text(line, style=_line_style(line)))

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


def _line_style(line: str) -> str:
    if line.startswith(("warning", "stopping")):
        return "bold yellow"
    if line.startswith("library warning"):
        return "yellow"
    return "bold red" if line.startswith("error") else ""


class _FileTail:
    """The last lines of a growing text file (worker.log), then what is appended to it."""

    def __init__(self, path: Path) -> None:
        self.path, self.reader = path, LineReader(path)

    def start(self, lines: int) -> list[str]:
        try:
            size = self.path.stat().st_size
        except OSError:
            size = 0
        self.reader = LineReader(self.path, max(0, size - _LOG_TAIL_BYTES), skip_partial_first=True)
        return self.read()[-lines:]

    def read(self) -> list[str]:
        # A progress bar's redraws (carriage returns): the last one.
        return [line.decode("utf-8", errors="replace").rsplit("\r", 1)[-1] for line in self.reader.read_lines()]


def _sample_text(sample: Sample) -> Text:
    prompt = sample.prompt.strip().splitlines()[-1] if sample.prompt.strip() else ""
    each = ", ".join(f"{k} {v:.2f}" for k, v in sample.rewards.items())
    style = "green" if sample.label == "best" else "red" if sample.label == "worst" else ""
    text = Text.assemble((f"step {sample.step}  {sample.label or 'sample'}", f"bold {style}"),
                         f"  reward {sample.reward:.3g}" if sample.reward is not None else "",
                         (f"  ({each})" if each else "", "dim"), "\n")  # fmt: skip
    text.append(f"  prompt: {prompt[:200]}\n", style="dim")
    text.append("  " + sample.completion.strip().replace("\n", "\n  ")[:600] + "\n\n")
    return text


def _comparison_table(state: RunState) -> Table:
    """Each policy stage's held-out prompts: the starting model's answer and the trained one's, side by side."""
    table = Table(title="Before and after training (greedy answers to held-out prompts)", expand=True,
                  show_lines=True, title_justify="left")  # fmt: skip
    table.add_column("prompt", ratio=2, style="dim")
    table.add_column("before (the stage's starting model)", ratio=3)
    table.add_column("after (trained)", ratio=3, style="green")
    for stage, pairs in sorted(state.comparisons.items()):
        name = state.stages[stage] if stage < len(state.stages) and len(state.stages) > 1 else ""
        for prompt, before, after in pairs:
            table.add_row(f"[{name}] {prompt}" if name else prompt, before, after)
    return table


class RunScreen(Screen[None]):
    BINDINGS = [
        Binding("s", "save_now", "Save checkpoint"),
        Binding("x", "stop", "Stop & save"),
        Binding("r", "resume", "Resume"),
        Binding("escape", "leave", "Back (run continues)"),
        Binding("escape", "back", "Back"),  # the same key, worded for a run that has ended (check_action)
        Binding("l", "raw_log(True)", "worker.log"),  # on the Log tab only (check_action)
        Binding("l", "raw_log(False)", "Events log"),
        Binding("1", "tab('curves')", "Curves", show=False),
        Binding("2", "tab('samples')", "Samples", show=False),
        Binding("3", "tab('log')", "Log", show=False),
        Binding("4", "tab('result')", "Result", show=False),
        Binding("5", "tab('try')", "Try it", show=False),
        Binding("6", "tab('eval')", "Eval", show=False),
        Binding("[", "stage(-1)", "Stage", show=False),  # the Curves tab's stage picker (widgets/plots.py)
        Binding("]", "stage(1)", "Stage", show=False),
    ]

    def __init__(self, run_dir: Path, handle: runner.RunHandle | None = None) -> None:
        super().__init__()
        self.run_dir, self.handle = run_dir, handle
        self.state = RunState(name=run_dir.name)
        self.tail = EventReader(RunDir(run_dir).events)
        try:  # what the file holds now is history, even if it takes the reader several reads
            self._history_end = RunDir(run_dir).events.stat().st_size
        except OSError:
            self._history_end = 0
        self._stop_requests = 0
        self._samples_shown = 0
        # The Log tab's lines, rendered from this screen's state (the printer feeds it).
        log = _LogStream(lambda: self.query_one("#log-pane", RichLog))
        self._printer = Printer(out=log, tty=False, state=self.state)  # type: ignore[arg-type]
        self._live = False  # past the history: an end event or a warning now is news
        self._worker_log = _FileTail(RunDir(run_dir).worker_log)
        self.try_it = TryIt(run_dir, id="try-it")

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="progress-row"):
            yield ProgressBar(id="progress", show_eta=False)
            yield Static("waiting for the worker…", id="status")
        yield Static("", id="figures")
        yield Static("", id="active")
        with TabbedContent(id="tabs", initial="curves"):
            with TabPane("Curves [1]", id="curves"):
                yield PlotGrid(id="plots")
            with TabPane("Samples [2]", id="samples"):
                with VerticalScroll():
                    yield Static("GRPO runs show their best and worst completions here.", id="samples-text")
            with TabPane("Log [3]", id="log"):
                yield RichLog(id="log-pane", wrap=True, markup=False)
                yield Log(id="raw-log", max_lines=LOG_LINES)
            with TabPane("Result [4]", id="result"), VerticalScroll():
                yield Static("The run is not finished yet.", id="result-text")
                yield Static("", id="result-compare")
                yield ExportPane(self.run_dir, id="exports")
            with TabPane("Try it [5]", id="try"):
                yield self.try_it
            with TabPane("Eval [6]", id="eval"), VerticalScroll():
                yield EvalPanel(self.run_dir, id="eval-panel")
        yield Footer()

    def on_mount(self) -> None:
        self.title, self.sub_title = self.run_dir.name, display_path(self.run_dir)
        self.query_one("#raw-log", Log).display = False
        self.poll()
        self.set_interval(POLL_S, self.poll)

    # --- events -> widgets -------------------------------------------------------------------

    def poll(self) -> None:
        """Read what is new and redraw; the timer keeps the UI thread free between reads."""
        events = self.tail.read()
        if events and self.state.failed is not None and self.state.failed.error_type == _INTERRUPTED:
            self.state.failed = None  # it writes again after all (its lock was missed for a moment)
        for event in events:
            self._printer.render(event)  # feeds self.state
            if isinstance(event, Warning) and event.source == "smoltrain" and self._live:  # news, not history
                self.notify(event.message + (f"\n{event.hint}" if event.hint else ""), title="warning", severity="warning", timeout=8)
        if not self._live or any(isinstance(event, EvalResult) for event in events):
            self.query_one(EvalPanel).refresh_results()  # the first read: a past run's results, or `smoltrain eval`'s
        if events:
            self._show_result()  # also after a RunStarted: a resumed run is not finished any more
            self._redraw()
            self.refresh_bindings()  # Resume shows in the footer once a run has stopped
        if self.tail.offset >= self._history_end:  # not before: a half-read history is no dead worker
            self._check_worker_alive()
            self._live = True
        if self.query_one("#raw-log", Log).display:
            self.query_one("#raw-log", Log).write_lines(self._worker_log.read())

    def _redraw(self) -> None:
        state = self.state
        self.query_one(PlotGrid).show(panels(state))
        bar = self.query_one(ProgressBar)
        bar.update(total=max(1, state.max_steps), progress=state.step)
        stages = f"stage {state.stage + 1}/{len(state.stages)} {state.technique}  " if len(state.stages) > 1 else f"{state.technique}  "
        parts = [stages + f"step {state.step}/{state.max_steps}", state.eta_text()]
        if state.ended:
            parts = [stages + f"step {state.step}", self._status_word()]
        self.query_one("#status", Static).update("  ".join(parts))
        # Memory first: at 80 columns the line ends where the terminal does.
        figures = (state.memory_text(), state.gpu_text(), state.pace_text(), state.throughput_text())
        self.query_one("#figures", Static).update("  ".join(part for part in figures if part))
        self.query_one("#active", Static).update(
            Text("active: ", style="bold").append(" | ".join(f"{k} {v}" for k, v in state.active.items()), style="")
        )
        if len(state.samples) != self._samples_shown or state.samples and state.samples[-1].step:
            self._samples_shown = len(state.samples)
            text = Text()
            for sample in reversed(state.samples):
                text.append_text(_sample_text(sample))
            if state.samples:
                self.query_one("#samples-text", Static).update(text)

    def _status_word(self) -> str:
        if self.state.failed is not None:
            return "interrupted" if self.state.failed.error_type == _INTERRUPTED else "failed"
        return self.state.finished.status if self.state.finished else "training"

    def _check_worker_alive(self) -> None:
        """A worker that died without an end event (killed, out of memory, the machine went down) must not
        look like it trains on: ours by its exit code, one started elsewhere by its lock."""
        if self.state.ended or not self.state.stages:
            return
        if self.handle is not None:
            if self.handle.process.poll() is None:
                return
            for event in self.tail.read():  # anything written just before it exited
                self._printer.render(event)
            if self.state.ended:
                return
            code = self.handle.process.returncode
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit {code}"
            message = f"the training process died ({how}) without a word at step {self.state.step}"
        elif running_worker(self.run_dir) is None:
            message = f"the training process ended without a word at step {self.state.step} (killed, or the machine went down)"
        else:
            return
        self.state.failed = RunFailed(error_type=_INTERRUPTED, message=message, user_error=False,
                                      hint=f"continue from its last complete checkpoint: smoltrain resume {self.run_dir} (or r here)")  # fmt: skip
        self._show_result()
        self._redraw()
        self.refresh_bindings()

    def _show_result(self) -> None:
        state, lines = self.state, []
        if not state.ended:
            self.query_one("#result-text", Static).update("The run is not finished yet.")
            return
        if state.failed is not None:
            heading = "The run was interrupted" if state.failed.error_type == _INTERRUPTED else "The run failed"
            lines += [f"[b red]{heading}:[/] {state.failed.message}"]
            lines += [f"hint: {state.failed.hint}"] if state.failed.hint else []
            lines += [f"details: {RunDir(self.run_dir).worker_log}"] if not state.failed.user_error else []
        elif state.finished is not None:
            done = state.finished
            verb = "Stopped on request" if done.status == "stopped" else "Done"
            if done.stopped_at is not None:
                lines.append(f"[b green]Stopped at once[/] at step {done.stopped_at} after "
                             f"{format_duration(done.duration_s)}; the last complete checkpoint is at step {done.step}.")  # fmt: skip
            else:
                lines.append(f"[b green]{verb}[/] at step {done.step} after {format_duration(done.duration_s)}.")
            for curated in state.curated.values():
                lines += [escape(line) for line in curated_lines(curated)]
            if done.final_dir and state.technique != "curate":
                lines += [f"Your model (LoRA adapter + tokenizer): [b]{done.final_dir}[/]",
                          f"Load it:  peft.{state.auto_class()}.from_pretrained({done.final_dir!r})"]  # fmt: skip
            if done.status == "stopped":
                lines.append(f"Carry on later:  smoltrain resume {self.run_dir}")
            lines += [f"Run it again:  smoltrain run {RunDir(self.run_dir).config}", "", escape(state.next_step())]
        self.query_one("#result-text", Static).update("\n".join(lines))
        # A curate run made data, not a model: nothing to export.
        self.query_one(ExportPane).display = state.technique != "curate"
        if state.comparisons:
            self.query_one("#result-compare", Static).update(_comparison_table(state))
        if not self._live:
            return  # a past run opens on its curves
        self.query_one(TabbedContent).active = "result"
        self.notify(lines[0].split("]", 1)[-1].replace("[/", "").replace("]", ""), title=self.run_dir.name)

    # --- keys ----------------------------------------------------------------------------------

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_raw_log(self, raw: bool) -> None:
        """The Log tab shows worker.log as written (raw) or the events' lines."""
        pane = self.query_one("#raw-log", Log)
        if raw:
            pane.clear()
            pane.write_lines(self._worker_log.start(LOG_LINES))
        pane.display, self.query_one("#log-pane", RichLog).display = raw, not raw
        self.refresh_bindings()

    def action_stage(self, delta: int) -> None:
        self.query_one(PlotGrid).action_stage(delta)

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()  # `l` is the Log tab's
        if event.pane.id == "eval":  # `smoltrain eval` in another terminal writes results without an event here
            self.query_one(EvalPanel).refresh_results()

    def action_save_now(self) -> None:
        if self.state.ended:
            self.notify("The run has ended; its model is saved (see Result).")
            return
        runner.request_checkpoint(self.run_dir)
        self.notify("Checkpoint requested: it is written after the current step.", title="save")

    def action_stop(self) -> None:
        if self.state.ended:
            self.notify("The run has already ended.")
            return
        if self.handle is None and running_worker(self.run_dir) is None:
            self.notify("No training process is running for this run.", severity="warning")
            return
        if self._stop_requests:
            question, answer = "Stop at once, without waiting for this step to finish?", ("Stop now", "stop", "error")
        else:
            question, answer = ("Stop training? The current step finishes, then a checkpoint and the adapter are saved.",
                                ("Stop and save", "stop", "warning"))  # fmt: skip
        self.app.push_screen(ChoiceDialog(question, [answer]), self._on_stop_answer)

    def _on_stop_answer(self, answer: str | None) -> None:
        if answer != "stop":
            return
        self._stop_requests += 1
        if self.handle is not None:
            self.handle.request_stop()
        elif not runner.request_stop(self.run_dir):  # started elsewhere: the pid file finds it
            self.notify("The run's training process has already gone.", severity="warning")
            return
        self.notify("Stopping after this step and saving…" if self._stop_requests == 1 else "Stopping now.", title="stop")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "raw_log":  # the Log tab's, worded for the view it switches to
            on_log = self.query_one(TabbedContent).active == "log"
            return on_log and parameters[0] != self.query_one("#raw-log", Log).display
        if action == "resume":  # in the footer only for a run that stopped before its end
            finished = self.state.finished
            return self.state.failed is not None or (finished is not None and finished.status != "completed")
        if action in ("save_now", "stop", "leave"):  # nothing to save or stop, and no "run continues", once it ended
            return not self.state.ended
        if action == "back":
            return self.state.ended
        return True

    def action_back(self) -> None:
        self.action_leave()

    def action_resume(self) -> None:
        """Continue a stopped or failed run from its last complete checkpoint, on this screen."""
        if self.handle is not None and self.handle.process.poll() is None:
            # Its end event is written; the worker is still releasing memory and exiting.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.handle.process.wait(timeout=10)
        try:
            run_dir = runner.resume_checks(self.run_dir)
        except SmoltrainError as exc:
            self.notify(exc.render(), severity="warning", title="cannot resume")
            return
        self.handle = runner.start(run_dir, resume=True)
        self.app.handles[self.run_dir] = self.handle  # type: ignore[attr-defined]
        self._stop_requests = 0
        self.query_one(TabbedContent).active = "curves"
        self.notify("Resuming from the last complete checkpoint…", title=self.run_dir.name)

    def action_leave(self) -> None:
        if not self.state.ended and self.handle is not None:
            self.notify(f"{self.run_dir.name} keeps training; open it again from the runs list.", title="still training")
        self.try_it.stop_server()
        self.app.pop_screen()

    def on_unmount(self) -> None:
        self.try_it.stop_server()
