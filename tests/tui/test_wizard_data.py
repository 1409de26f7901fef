"""The wizard's Dataset and Review steps refuse data they know is unusable (issue 14, defect 2), and the
preview shows each technique's rows as its trainer sees them, with the dataset's statistics (defect 13).

The previews are real: they load the tiny tokenizer under assets/ and the demo data (seconds).
"""

from __future__ import annotations

import re
import threading

import pytest
from textual.widgets import Input, Static

from smoltrain.tui import catalog
from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.catalog import DEMO_DATA
from smoltrain.tui.screens.wizard import WizardScreen
from smoltrain.tui.screens.wizard.data_step import DataStep
from smoltrain.tui.screens.wizard.review_step import ReviewStep

TECHNIQUES = [t.name for t in catalog.TECHNIQUES]  # in the order the technique step lists them
DATASET_STEP, REVIEW_STEP = 2, 4

pytestmark = pytest.mark.anyio


@pytest.fixture
def no_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DataStep, "run_preview", lambda self: None)


@pytest.fixture
def started(app: SmoltrainApp) -> list[str]:
    """The names of the runs the wizard starts (none is really started)."""
    names: list[str] = []
    app.start_run = lambda cfg, name: names.append(name)  # type: ignore[method-assign]
    return names


async def _dataset_step(pilot, technique: str) -> WizardScreen:
    """The wizard at the Dataset step of `technique`, its demo data's preview read."""
    await pilot.press("n")
    await pilot.pause()
    await pilot.press("ctrl+n")
    await pilot.pause()
    for _ in range(TECHNIQUES.index(technique)):
        await pilot.press("down")
    await pilot.press("ctrl+n")
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    screen = pilot.app.screen
    assert isinstance(screen, WizardScreen) and screen.index == DATASET_STEP
    return screen


async def _submit_path(pilot, screen: WizardScreen, path: str) -> None:
    field = screen.query_one("#data-input", Input)
    field.value = path
    field.focus()
    await pilot.press("enter")
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def _text(screen: WizardScreen, selector: str) -> str:
    return str(screen.query_one(selector, Static).render())


async def test_next_refuses_chat_data_for_dpo_and_says_which_file(app, started, monkeypatch):
    monkeypatch.chdir(DEMO_DATA.parent.parent)  # the project folder, where assets/ is
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "dpo")
        await _submit_path(pilot, screen, "assets/data/sft.jsonl")  # relative, as typed: the draft keeps it absolute
        for key in ("ctrl+n", "ctrl+r"):  # neither Next nor the jump to Review gets past it
            await pilot.press(key)
            await pilot.pause()
            assert screen.index == DATASET_STEP, key
            problem = _text(screen, "#wizard-problem")
            assert "sft.jsonl" in problem and "dpo" in problem, problem
        assert started == []


async def test_a_missing_local_file_is_refused_at_once_by_name(app, started):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "sft")
        screen.query_one("#data-input", Input).value = "my-data/chats.jsonl"  # typed, not previewed
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == DATASET_STEP
        problem = _text(screen, "#wizard-problem")
        assert "my-data/chats.jsonl" in problem and "not found" in problem, problem


async def test_a_hub_id_is_not_taken_for_a_missing_file(app, started, no_preview):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "sft")
        screen.query_one("#data-input", Input).value = "some-org/some-chats"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == DATASET_STEP + 1, _text(screen, "#wizard-problem")


async def test_start_waits_for_the_reviews_data_check(app, started, no_preview, monkeypatch):
    import smoltrain.datacheck

    done = threading.Event()

    def slow_check(cfg):
        done.wait(30)
        return ["  sft: 2000 of 2000 rows kept"]

    monkeypatch.setattr(smoltrain.datacheck, "check_data", slow_check)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "sft")
        for _ in range(2):
            await pilot.press("ctrl+n")
            await pilot.pause()
        assert screen.index == REVIEW_STEP
        await pilot.press("ctrl+r")  # the check is still running
        await pilot.pause()
        assert started == []
        assert "checking the data" in _text(screen, "#wizard-problem")
        done.set()
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        assert screen.query_one(ReviewStep).data_error is None
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert len(started) == 1


async def test_dpo_preview_shows_the_chosen_and_the_rejected_answer(app):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "dpo")
        rows = _text(screen, "#preview-rows")
        # The first row of assets/data/dpo.jsonl, through the chat template.
        assert "Which color is the glim?" in rows
        assert "chosen" in rows and "The glim is purple." in rows
        assert "rejected" in rows and "I don't know." in rows
        assert "trained on" not in rows


async def test_kto_preview_colours_each_answer_by_its_label(app):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "kto")
        rows = _text(screen, "#preview-rows")
        # The first rows of assets/data/kto.jsonl: an unhelpful answer rated down, then a right sum rated up.
        assert "What is 6 + 11?" in rows and "undesirable: That is a good question." in rows
        assert "desirable: 11 + 3 = 14." in rows
        assert "label:" not in rows and "KTO raises desirable answers" in rows


async def test_grpo_preview_shows_the_answer_the_reward_reads_and_nothing_trained(app):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "grpo")
        rows = _text(screen, "#preview-rows")
        assert "3 + 1 = ?" in rows
        assert re.search(r"answer\b.*: 4\b", rows), rows  # the first row's answer column, read by math_answer
        assert "trained on" not in rows and "highlighted" not in rows and "samples completions" in rows


async def test_preview_states_columns_sizes_and_answer_lengths(app):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "dpo")
        stats = _text(screen, "#preview-stats")
        assert "columns: prompt, chosen, rejected" in stats, stats
        # 1500 pairs, data.eval_fraction 0.05 of them held out for evaluation.
        assert "1425 train" in stats and "75 eval" in stats, stats
        lengths = re.search(r"chosen (\d+), rejected (\d+)", stats)
        assert lengths and 0 < int(lengths[2]) and 0 < int(lengths[1]), stats


async def test_preview_of_chat_data_counts_turns(app):
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _dataset_step(pilot, "sft")
        stats = _text(screen, "#preview-stats")
        assert "columns: messages" in stats and "1900 train" in stats and "100 eval" in stats, stats
        assert re.search(r"turns per row: median \d+, max \d+", stats), stats


async def test_still_reading_goes_once_the_preview_is_shown(app, monkeypatch):
    import smoltrain.tui.preview

    read = threading.Event()
    real = smoltrain.tui.preview.build_preview
    monkeypatch.setattr(smoltrain.tui.preview, "build_preview", lambda raw: (read.wait(30), real(raw))[1])
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        await pilot.press("ctrl+n", "ctrl+n", "ctrl+n")  # -> Dataset, and Next again while its preview reads
        await pilot.pause()
        screen = app.screen
        problem = screen.query_one("#wizard-problem", Static)
        assert screen.index == DATASET_STEP and "still reading the data" in str(problem.render())
        read.set()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert str(problem.render()) == "", "the preview is shown: nothing is wrong any more"
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == DATASET_STEP + 1
