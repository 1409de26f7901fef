"""The wizard's Model step offers the app's finished runs as starting models (a run folder as model.name_or_path)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from textual.widgets import Input, OptionList

from smoltrain.rundir import RunDir
from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.catalog import DEMO_MODEL
from smoltrain.tui.screens.wizard import WizardScreen
from smoltrain.tui.screens.wizard.choose import apply_technique

pytestmark = pytest.mark.anyio


@pytest.fixture
def finished_run(recorded_runs: Path) -> Path:
    """The recorded SFT > GRPO pipeline (completed, on the demo model), with the result it left: final/."""
    run = RunDir(recorded_runs / "grpo-pipeline")
    # Recorded in /work/main: the demo model is wherever this checkout is (CI clones elsewhere).
    made = run.config.stat()
    run.config.write_text(run.config.read_text().replace('"/work/main/assets/tiny-llama"', f'"{DEMO_MODEL}"'))
    os.utime(run.config, (made.st_atime, made.st_mtime))  # its date is the recording's
    run.final.mkdir()
    (run.final / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base-model"}))
    return run.root


def _model_rows(screen: WizardScreen) -> list[str]:
    listing = screen.query_one("#model-list", OptionList)
    return [str(listing.get_option_at_index(i).prompt) for i in range(listing.option_count)]


async def test_the_model_list_shows_finished_runs_and_picking_one_starts_from_it(app: SmoltrainApp, finished_run):
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, WizardScreen)
        runs = [row for row in _model_rows(screen) if row.startswith("run ")]
        # Only runs with a result: the DPO run stopped mid-way has no final/, so nothing to start from.
        assert len(runs) == 1 and runs[0].startswith("run   grpo-pipeline  (sft"), runs
        assert "grpo on " in runs[0] and "tiny-llama, " in runs[0] and "20" in runs[0]  # technique on base, when
        listing = screen.query_one("#model-list", OptionList)
        listing.highlighted = next(i for i, row in enumerate(_model_rows(screen)) if row.startswith("run "))
        await pilot.pause()
        assert screen.query_one("#model-input", Input).value == str(finished_run)
        await pilot.press("ctrl+n")  # -> technique
        await pilot.pause()
        assert screen.index == 1
        assert screen.draft.get("model.name_or_path") == str(finished_run)


def test_a_run_on_the_demo_model_gets_the_demo_defaults(finished_run):
    raw: dict = {"model": {"name_or_path": str(finished_run)}}
    apply_technique(raw, "dpo")
    assert raw["train"]["learning_rate"] == 5e-4 and raw["train"]["max_steps"] == 60  # the demo's, not 5e-6
    assert raw["lora"]["rank"] == 16
