"""The Textual app behind `smoltrain` with no arguments: home, wizard, run screens.

The app starts runs through smoltrain.runner (the same worker child process as `smoltrain run`)
and keeps their handles, so leaving a run screen never stops a run, and quitting while one trains
asks first. Screens other than home are imported when first opened, which keeps start-up fast.

Must not import torch (or transformers) at import time or while showing the first screen: the
dataset preview imports them lazily in a worker thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import App
from textual.binding import Binding

from smoltrain.errors import SmoltrainError
from smoltrain.tui.screens.dialogs import ChoiceDialog
from smoltrain.tui.screens.home import HomeScreen

if TYPE_CHECKING:  # the runner and the schema load with the first run, not before the first screen
    from smoltrain import runner
    from smoltrain.config.schema import RunConfig


class SmoltrainApp(App[None]):
    CSS_PATH = "app.tcss"
    TITLE = "smoltrain"
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
        Binding("f2", "toggle_theme", "Light/dark"),
    ]

    def __init__(self, runs_dir: Path | str = "runs", run_overrides: list[str] | None = None) -> None:
        """run_overrides: `section.key=value` applied to every run started here (like --set)."""
        super().__init__()
        self.runs_dir = Path(runs_dir).expanduser().resolve()
        self.run_overrides = run_overrides or []
        self.handles: dict[Path, runner.RunHandle] = {}

    def on_mount(self) -> None:
        self.push_screen(HomeScreen(self.runs_dir))

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    # --- navigation the screens ask for -------------------------------------------------------

    def open_wizard(self, preset: Path | None, description: str = "") -> None:
        """The wizard on a new draft, or at Review on a preset (a run's config.toml is one: "edit and run again")."""
        from smoltrain.tui.draft import Draft
        from smoltrain.tui.screens.wizard import WizardScreen

        try:
            draft = Draft.from_preset(preset, description) if preset else None
        except SmoltrainError as exc:
            self.notify(exc.render(), severity="error", title="cannot open the preset")
            return
        self.push_screen(WizardScreen(draft, at_review=preset is not None))

    def open_run(self, run_dir: Path) -> None:
        from smoltrain.tui.screens.run import RunScreen

        self.push_screen(RunScreen(run_dir, self.handles.get(run_dir)))

    def forget_run(self, run_dir: Path) -> None:
        """A run folder deleted or renamed from home (never while its worker runs): its old handle goes."""
        self.handles.pop(run_dir, None)

    def start_run(self, cfg: RunConfig, name: str) -> None:
        """Create the run folder, start the worker, and show its run screen in place of the wizard."""
        from smoltrain import runner

        try:
            cfg = self._with_overrides(cfg)
            run_dir = runner.create_run_dir(cfg, name or runner.default_run_name(cfg.train.technique))
        except SmoltrainError as exc:
            self.notify(exc.render(), severity="error", title="cannot start")
            return
        self.handles[run_dir] = runner.start(run_dir)
        self.pop_screen()  # the wizard
        self.open_run(run_dir)

    def _with_overrides(self, cfg: RunConfig) -> RunConfig:
        from smoltrain.config.load import apply_overrides, validate_config

        raw = cfg.model_dump(mode="json", exclude_none=True)
        raw["output_dir"] = str(self.runs_dir)  # the home screen lists this folder
        apply_overrides(raw, self.run_overrides)
        return validate_config(raw, source="--set")

    # --- quitting never kills a run silently ----------------------------------------------------

    def training(self) -> list[runner.RunHandle]:
        return [h for h in self.handles.values() if h.process.poll() is None]

    async def action_quit(self) -> None:
        from smoltrain.tui.screens.wizard import WizardScreen

        running = self.training()
        if not running and isinstance(self.screen, WizardScreen):  # a new run's settings would be lost
            question = "Quit, and lose this new run's settings? (ctrl+s in the wizard saves them as a preset.)"
            self.push_screen(ChoiceDialog(question, [("Quit", "keep", "warning")]), self._on_quit_answer)
            return
        if not running:
            self.exit()
            return
        names = ", ".join(h.run_dir.name for h in running)
        question = (f"{names} is still training. Quitting leaves it training in the background "
                    "(reopen it here later from the runs list), or stop it first and it saves.")  # fmt: skip
        answers = [("Keep training, quit", "keep", "primary"), ("Stop and save, quit", "stop", "warning")]
        self.push_screen(ChoiceDialog(question, answers), self._on_quit_answer)

    def _on_quit_answer(self, answer: str | None) -> None:
        if answer == "stop":
            for handle in self.training():
                handle.request_stop()  # the worker saves and exits on its own; it is in its own session
        if answer in ("keep", "stop"):
            self.exit()


def run_app() -> int:
    SmoltrainApp().run()
    return 0
