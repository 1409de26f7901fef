"""The wizard's settings step (issue 14, defects 3, 11, 12): typing keeps up, the memory meter stays in
sight and speaks GiB, fit-to-GPU edits the fields in place, the form is compact, and GRPO's reward
picker shows full names, clear ticks, every reward of the schema, and refuses what cannot run."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from smoltrain.tui import catalog
from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.screens.wizard import WizardScreen
from smoltrain.tui.screens.wizard.data_step import DataStep
from smoltrain.tui.screens.wizard.settings_step import COMMON_FIELDS, TECHNIQUE_FIELDS, SettingsStep
from smoltrain.tui.widgets.memory_meter import MemoryMeter
from smoltrain.tui.widgets.reward_picker import RewardPicker
from smoltrain.tui.widgets.schema_form import SchemaForm

pytestmark = pytest.mark.anyio

TECHNIQUES = [t.name for t in catalog.TECHNIQUES]  # in the order the technique step lists them


@pytest.fixture
def no_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    """The data step's preview loads transformers (seconds); the settings step does not need it."""
    monkeypatch.setattr(DataStep, "run_preview", lambda self: None)


async def _settings(pilot, technique: str = "sft") -> WizardScreen:
    """From the home screen to the settings step of `technique`, its form mounted."""
    await pilot.press("n", "ctrl+n")
    await pilot.pause()
    await pilot.press(*["down"] * TECHNIQUES.index(technique), "ctrl+n", "ctrl+n")
    screen = pilot.app.screen
    for _ in range(50):
        await pilot.pause(0.05)
        if screen.query(SchemaForm) and (technique != "grpo" or screen.query(RewardPicker)):
            break
    assert isinstance(screen, WizardScreen) and isinstance(screen.step, SettingsStep)
    return screen


async def _meter_text(pilot, screen: WizardScreen, wanted: str) -> str:
    """The meter estimates in a thread, after a pause in typing: wait for `wanted` to show."""
    meter = screen.query_one("#memory", MemoryMeter)
    for _ in range(60):
        await pilot.pause(0.1)
        if wanted in str(meter.render()):
            break
    return str(meter.render())


def _problem(screen: WizardScreen) -> str:
    return str(screen.query_one("#wizard-problem", Static).render())


# --- defect 3: fast typing ----------------------------------------------------------------------


async def test_a_burst_of_typing_keeps_every_character(workdir, no_preview, monkeypatch):
    # No pause in this test is long enough to count: the check waits until the test runs it (no wall clock).
    monkeypatch.setattr(SettingsStep, "CHECK_DELAY", 3600)
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot)
        step = screen.query_one(SettingsStep)
        field = screen.query_one("#field-train-learning_rate", Input)
        field.focus()
        meter = screen.query_one(MemoryMeter)
        estimates = []
        meter.update_for = lambda cfg: estimates.append(cfg)  # type: ignore[method-assign]

        def pause_in_typing() -> None:
            """What the pending timer does once the keys stop: the draft check and one estimate."""
            timer = step._pending_check
            assert timer is not None, "the keys left a check waiting"
            timer.stop()
            step._check()

        field.value = "0.0005"  # the demo's own rate is 0.001: start from another, so the burst changes it
        await pilot.pause()
        pause_in_typing()
        estimates.clear()
        await pilot.press("end", "ctrl+u", *"0.001")
        assert field.value == "0.001" and screen.draft.get("train.learning_rate") == 0.001
        assert not estimates, "no estimate while the keys come"
        pause_in_typing()
        await pilot.press(*"25")  # 0.0012 and 0.00125: two valid entries in a row
        assert field.value == "0.00125" and screen.draft.get("train.learning_rate") == 0.00125
        assert len(estimates) == 1, "still none for the second burst's keys"
        pause_in_typing()
        # the draft check and the estimate wait for a pause in typing: once a burst, not once a key
        assert len(estimates) == 2, estimates
        assert estimates[-1].train.learning_rate == 0.00125


# --- defect 12: the memory meter and the form ----------------------------------------------------


async def test_the_meter_stays_in_sight_while_editing_the_memory_knobs(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot)
        for key in ("max_length", "micro_batch_size", "logging_steps"):
            field = screen.query_one(f"#field-train-{key}", Input)
            field.focus()
            screen.step.scroll_to_widget(field, animate=False)
            await pilot.pause()
            meter = screen.query_one(MemoryMeter)
            assert screen.step.scroll_y > 0 or key != "logging_steps"  # the form did scroll
            assert screen.step.region.contains_region(meter.region), key
            assert screen.get_widget_at(meter.region.x + 2, meter.region.y)[0] is meter, key


async def test_fit_sets_the_fields_in_place_keeping_scroll_and_focus(workdir, no_preview, monkeypatch):
    monkeypatch.setenv("SMOLTRAIN_GPU_MEM_GB", "1")
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot)
        screen.query_one("#field-train-micro_batch_size", Input).value = "64"
        field = screen.query_one("#field-train-max_length", Input)
        field.value = "2048"
        field.focus()
        screen.step.scroll_to_widget(field, animate=False)
        assert "does NOT fit" in await _meter_text(pilot, screen, "does NOT fit")
        scrolled = screen.step.scroll_y
        assert scrolled > 0
        await pilot.press("ctrl+f")
        for _ in range(60):
            await pilot.pause(0.1)
            if screen.draft.get("train.micro_batch_size") != 64:
                break
        await pilot.pause(0.3)
        micro, accum = screen.draft.get("train.micro_batch_size"), screen.draft.get("train.grad_accum")
        assert micro < 64 and micro * accum == 64
        assert screen.query_one("#field-train-micro_batch_size", Input).value == str(micro)
        assert screen.query_one("#field-train-grad_accum", Input).value == str(accum)
        assert app.focused is field and screen.step.scroll_y == scrolled


async def test_a_small_card_reads_with_a_decimal_in_gib(workdir, no_preview, monkeypatch):
    monkeypatch.setenv("SMOLTRAIN_GPU_MEM_GB", "0.5")
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot)
        text = await _meter_text(pilot, screen, "of 0.5 GiB")
        assert "0.6 of 0.5 GiB" in text and " GB" not in text, text


async def test_each_field_takes_at_most_two_rows(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot)
        form = screen.query_one(SchemaForm)
        fields = COMMON_FIELDS + TECHNIQUE_FIELDS["sft"]
        sections = len({key.split(".")[0] for key in fields})
        assert form.outer_size.height <= 2 * len(fields) + 2 * sections, form.outer_size.height
        help_text = screen.query_one("#help-train-learning_rate", Static)
        assert help_text.outer_size.height == 1 and "1e-4 to 2e-4" in str(help_text.tooltip)  # the whole text


# --- defect 11: GRPO's reward picker ------------------------------------------------------------


async def test_reward_names_show_whole_and_unticked_boxes_are_empty(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot, "grpo")
        picker = screen.query_one(RewardPicker)
        for name in ("math_answer", "exact_match", "reward_model", "python"):
            tick = picker.query_one(f"#reward-{name}")
            shown = tick.render().plain  # type: ignore[union-attr]
            assert name in shown and tick.content_region.width >= len(shown), (name, shown, tick.content_region)
            assert ("X" in shown) == tick.value, (name, shown)  # type: ignore[attr-defined]


async def test_a_weight_that_is_not_a_number_blocks_next_naming_the_reward(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot, "grpo")
        screen.query_one("#weight-math_answer", Input).value = "-"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == 3
        assert "math_answer" in _problem(screen) and "weight" in _problem(screen), _problem(screen)


async def test_a_pattern_that_does_not_compile_blocks_next(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot, "grpo")
        screen.query_one("#reward-format").value = True  # type: ignore[attr-defined]
        screen.query_one("#option-format-pattern", Input).value = "("
        await pilot.pause(0.5)
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == 3
        assert "pattern: not a valid regular expression: missing )" in _problem(screen), _problem(screen)


async def test_no_reward_ticked_asks_to_tick_one(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot, "grpo")
        screen.query_one("#reward-math_answer").value = False  # type: ignore[attr-defined]
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == 3
        assert "tick at least one reward" in _problem(screen) and "[[grpo.rewards]]" not in _problem(screen)


async def test_a_reward_model_reward_goes_into_the_draft_as_the_schema_wants(workdir, no_preview):
    reward_run = workdir / "runs" / "my-reward"
    (reward_run / "final").mkdir(parents=True)
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _settings(pilot, "grpo")
        screen.query_one("#reward-reward_model").value = True  # type: ignore[attr-defined]
        screen.query_one("#option-reward_model-model", Input).value = str(reward_run)
        screen.query_one("#weight-reward_model", Input).value = "0.5"
        await pilot.pause(0.5)
        assert {"name": "reward_model", "weight": 0.5, "model": str(reward_run)} in screen.draft.get("grpo.rewards")
        assert [r.name for r in screen.draft.validate().grpo.rewards] == ["math_answer", "reward_model"]
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == 4, _problem(screen)

