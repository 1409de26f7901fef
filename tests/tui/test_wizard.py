"""The wizard walks, for each technique, from the demo model to a valid preset, saved and startable."""

from __future__ import annotations

import pytest
import tomllib
from textual.widgets import Input, OptionList, Static

from smoltrain.config.load import load_config
from smoltrain.tui import catalog
from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.catalog import DEMO_MODEL
from smoltrain.tui.screens.wizard import WizardScreen
from smoltrain.tui.screens.wizard.data_step import DataStep
from smoltrain.tui.widgets.schema_form import SchemaForm

TECHNIQUES = [t.name for t in catalog.TECHNIQUES]  # in the order the technique step lists them

pytestmark = pytest.mark.anyio  # Pilot tests run on asyncio through anyio's pytest plugin


@pytest.fixture
def no_preview(monkeypatch: pytest.MonkeyPatch) -> None:
    """The preview loads transformers (seconds); it has its own test."""
    monkeypatch.setattr(DataStep, "run_preview", lambda self: None)


async def _walk_to_review(pilot, technique: str) -> WizardScreen:
    app = pilot.app
    await pilot.press("n")
    await pilot.pause()
    screen = app.screen
    assert isinstance(screen, WizardScreen)
    assert screen.query_one("#model-input", Input).value == str(DEMO_MODEL)  # the demo model is the default
    await pilot.press("ctrl+n")
    await pilot.pause()
    for _ in range(TECHNIQUES.index(technique)):
        await pilot.press("down")
    await pilot.press("ctrl+n")  # -> dataset
    await pilot.pause()
    await pilot.press("ctrl+n")  # -> settings
    await pilot.pause()
    assert screen.query_one(SchemaForm)  # the form is there
    if technique == "distill":  # a teacher has no default: the demo model itself will do for a valid preset
        screen.query_one("#field-distill-teacher", Input).value = str(DEMO_MODEL)
        await pilot.pause()
    await pilot.press("ctrl+n")  # -> review
    await pilot.pause()
    return screen


@pytest.mark.parametrize("technique", TECHNIQUES)
async def test_wizard_makes_a_valid_preset(workdir, no_preview, technique):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _walk_to_review(pilot, technique)
        assert screen.index == 4, screen.query_one("#wizard-problem", Static).render()
        assert "valid preset" in str(screen.query_one("#review-problem", Static).render())
        await pilot.press("ctrl+s")
        await pilot.pause()
        await pilot.press("enter")  # accept the suggested name
        await pilot.pause()
    saved = workdir / "my-presets" / f"my-{technique}.toml"
    cfg = load_config(saved)
    assert cfg.train.technique == technique
    assert cfg.model.name_or_path == str(DEMO_MODEL)
    assert cfg.data is not None and cfg.data.path == catalog.CURATED_DATASETS[technique][0].path  # its demo data
    if technique == "grpo":
        assert [r.name for r in cfg.grpo.rewards] == ["math_answer"]


async def test_the_wizard_offers_kto_with_when_to_use_it_and_its_settings(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n", "ctrl+n")
        await pilot.pause()
        listing = app.screen.query_one("#technique-list", OptionList)
        kto = listing.get_option("kto")
        assert "thumbs up/down" in str(kto.prompt) and "no pairs needed" in str(kto.prompt)
        for _ in range(TECHNIQUES.index("kto")):
            await pilot.press("down")
        await pilot.press("ctrl+n", "ctrl+n")  # -> dataset (the demo answers), -> settings
        await pilot.pause()
        assert app.screen.draft.get("train.learning_rate") == 5e-4  # the tiny demo model's usual step
        form = app.screen.query_one(SchemaForm)
        assert {"kto.beta", "kto.desirable_weight", "kto.undesirable_weight"} <= set(form.fields)


async def _at_settings(app, pilot):
    """New run -> SFT -> the demo data -> the settings form (step 4): its screen."""
    await pilot.press("n", "ctrl+n", "ctrl+n", "ctrl+n")
    await pilot.pause()
    return app.screen


async def test_settings_form_edits_the_preset_and_explains_bad_values(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _at_settings(app, pilot)
        field = screen.query_one("#field-train-learning_rate", Input)
        field.value = "5"
        await pilot.pause()
        assert "less than 1" in str(screen.query_one("#help-train-learning_rate", Static).render())
        field.value = "0.0003"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == 4
        assert tomllib.loads(screen.draft.to_toml())["train"]["learning_rate"] == 0.0003


async def _refused_then_taken(pilot, screen, field_id: str, bad: str, good: str, explained: str) -> None:
    """A bad value typed into a settings field is explained under it and keeps the wizard on the form;
    a good one moves it on to the review."""
    field = screen.query_one(f"#field-{field_id}", Input)
    field.value = bad
    await pilot.pause()
    assert explained in str(screen.query_one(f"#help-{field_id}", Static).render())
    await pilot.press("ctrl+n")
    await pilot.pause()
    assert screen.index == 3  # refused: still on the form
    field.value = good
    await pilot.pause()
    await pilot.press("ctrl+n")
    await pilot.pause()
    assert screen.index == 4


async def test_the_gpus_field_refuses_zero_and_saves_the_count_the_runner_launches(workdir, no_preview):
    """The app's way to --gpus N: the settings form's distributed.gpus lands in the preset, and the runner
    reads it back from the run's config.toml as the number of processes to launch."""
    from smoltrain import runner

    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _at_settings(app, pilot)
        await _refused_then_taken(pilot, screen, "distributed-gpus", "0", "2", "greater than or equal to 1")
        text = screen.draft.to_toml()
        assert tomllib.loads(text)["distributed"]["gpus"] == 2
        run_dir = runner.create_run_dir(screen.draft.validate(), "two-gpus")
        assert runner.run_processes(run_dir) == 2
        assert "--num_processes" in runner.worker_command(run_dir, False, 2)


async def test_a_model_must_be_given(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#model-input", Input).value = ""
        app.screen.query_one(OptionList).highlighted = None
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert app.screen.index == 0
        assert "pick a model" in str(app.screen.query_one("#wizard-problem", Static).render())


async def _preview_of(app, pilot, model: str | None = None):
    await pilot.press("n")
    await pilot.pause()
    if model is not None:
        app.screen.query_one("#model-input", Input).value = model  # as if typed: a folder of a real family
    await pilot.press("ctrl+n", "ctrl+n")  # SFT, then the dataset step with the demo chats
    step = app.screen.query_one(DataStep)
    for _ in range(300):
        await pilot.pause(0.1)
        if step.preview is not None:
            break
    assert step.preview is not None, step.query_one("#preview-summary", Static).render()
    return step.preview


@pytest.mark.parametrize(("family", "end_of_turn"), [("llama-3.2", "<|eot_id|>"), ("gemma-2", "<end_of_turn>")])
async def test_preview_highlights_the_answers_of_real_templates(workdir, family_model, family, end_of_turn):
    """Llama-3.2: no generation markers and no TRL training copy (span matching); Gemma-2: refuses the
    demo chats' system turns (folded). Both must show trained tokens, and only the answers'."""
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 40)) as pilot:
        preview = await _preview_of(app, pilot, str(family_model(family)))
        for row in preview.rows:
            trained = "".join(p.text for p in row if p.trained)
            untrained = "".join(p.text for p in row if not p.trained)
            assert trained.rstrip().endswith(end_of_turn), trained
            assert "user" not in trained and "user" in untrained
        if family == "gemma-2":
            assert "system turn folded into the next user turn" in preview.summary


async def test_preview_highlights_the_trained_tokens(workdir):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 40)) as pilot:
        preview = await _preview_of(app, pilot)  # the demo model
        assert preview.format == "messages"
        trained = [p.text for p in preview.rows[0] if p.trained]
        untrained = "".join(p.text for p in preview.rows[0] if not p.trained)
        assert trained and "user" in untrained and "user" not in "".join(trained)  # assistant turns only
        summary = app.screen.query_one(DataStep).query_one("#preview-summary", Static)
        assert "suggested max_length" in str(summary.render())


async def test_fit_to_my_gpu_shrinks_the_micro_batch_and_keeps_the_batch(workdir, no_preview, monkeypatch):
    monkeypatch.setenv("SMOLTRAIN_GPU_MEM_GB", "1")  # a 1 GiB card: the tiny model fits only in small batches
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _at_settings(app, pilot)
        screen.query_one("#field-train-micro_batch_size", Input).value = "64"
        screen.query_one("#field-train-max_length", Input).value = "2048"
        await pilot.pause()
        for _ in range(50):  # the meter estimates in a thread
            await pilot.pause(0.1)
            if "does NOT fit" in str(screen.query_one("#memory", Static).render()):
                break
        assert "does NOT fit" in str(screen.query_one("#memory", Static).render())
        await pilot.press("ctrl+f")
        for _ in range(50):
            await pilot.pause(0.1)
            if screen.draft.get("train.micro_batch_size") != 64:
                break
        micro, accum = screen.draft.get("train.micro_batch_size"), screen.draft.get("train.grad_accum")
        assert micro < 64 and micro * accum == 64  # the effective batch is kept
        assert screen.query_one("#field-train-micro_batch_size", Input).value == str(micro)  # the form shows it
        assert "fits" in str(screen.query_one("#memory", Static).render())


async def test_review_checks_the_data_against_the_template_and_start_refuses_a_rejected_row(workdir, family_model,
                                                                                          no_preview):
    """Two user turns in a row, which Gemma-2's template refuses: the review says which line, Start declines.
    (Without the Dataset step's preview, which refuses the row first: a preset opened at Review skips it.)"""
    import json

    from smoltrain.tui.screens.wizard.review_step import ReviewStep

    bad = workdir / "bad.jsonl"
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]}] * 3
    rows.insert(1, {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "?"},
                                 {"role": "assistant", "content": "Hello."}]})  # fmt: skip
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    app = SmoltrainApp(runs_dir="runs")
    started = []
    app.start_run = lambda cfg, name: started.append(name)  # type: ignore[method-assign]
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n")
        await pilot.pause()
        app.screen.query_one("#model-input", Input).value = str(family_model("gemma-2"))
        await pilot.press("ctrl+n", "ctrl+n")
        app.screen.query_one("#data-input", Input).value = str(bad)
        for _ in range(3):
            await pilot.press("ctrl+n")
            await pilot.pause()
        review = app.screen.query_one(ReviewStep)
        for _ in range(300):
            await pilot.pause(0.1)
            if review.data_error is not None:
                break
        shown = str(review.query_one("#review-data", Static).render())
        assert "line 2" in shown and "Conversation roles must alternate" in shown, shown
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert started == []


async def test_a_bad_setting_keeps_the_wizard_on_the_form_and_the_preset_unchanged(workdir, no_preview):
    """Issue 14, defect 1: `-0.001` for learning_rate (or `1e` for epochs, an emptied field) was dropped
    silently and Next reached Review with the schema's default in the preset."""
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = await _at_settings(app, pilot)
        before = tomllib.loads(screen.draft.to_toml())["train"].get("learning_rate")
        field = screen.query_one("#field-train-learning_rate", Input)
        for bad, said in (("-0.001", "greater than 0"), ("", "a value is needed"), ("1e", "valid number")):
            field.value = bad
            await pilot.pause()
            for key in ("ctrl+n", "ctrl+r"):  # neither Next nor Start gets past it
                await pilot.press(key)
                await pilot.pause()
                assert screen.index == 3, (bad, key)
                problem = str(screen.query_one("#wizard-problem", Static).render())
                assert "train.learning_rate" in problem and said in problem, problem
            assert tomllib.loads(screen.draft.to_toml())["train"].get("learning_rate") == before
        field.value = "0.002"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert screen.index == 4 and tomllib.loads(screen.draft.to_toml())["train"]["learning_rate"] == 0.002


async def test_q_in_the_wizard_asks_before_the_settings_are_lost(workdir, no_preview):
    """Issue 14, defect 14: `q` quit an idle wizard at once, and the new run's settings with it."""
    from smoltrain.tui.screens.dialogs import ChoiceDialog

    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("n", "ctrl+n")  # the wizard, at the technique step (no text field has focus)
        await pilot.pause()
        await pilot.press("q")
        await pilot.pause()
        assert isinstance(app.screen, ChoiceDialog) and "lose this new run's settings" in app.screen.question
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, WizardScreen) and app.is_running
        await pilot.press("q")
        await pilot.pause()
        await pilot.click("#answer-keep")
        await pilot.pause()
        assert not app.is_running


async def test_the_memory_meter_says_its_figure_is_per_gpu_for_a_two_gpu_run(workdir, no_preview, monkeypatch):
    monkeypatch.setenv("SMOLTRAIN_GPU_MEM_GB", "12")
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await _at_settings(app, pilot)
        meter = screen.query_one("#memory", Static)
        screen.query_one("#field-distributed-gpus", Input).value = "2"
        for _ in range(100):
            await pilot.pause(0.1)
            if "per GPU" in str(meter.render()):
                break
        shown = str(meter.render())
        assert "of 12 GiB: fits" in shown and "per GPU, 2 GPUs, ddp" in shown, shown


async def test_curate_asks_for_sampling_settings_not_training_ones_and_refuses_one_sample(workdir, no_preview):
    app = SmoltrainApp(runs_dir="runs")
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("n", "ctrl+n")
        await pilot.pause()
        curate = app.screen.query_one("#technique-list", OptionList).get_option("curate")
        assert "best" in str(curate.prompt) and "DPO pairs" in str(curate.prompt)
        for _ in range(TECHNIQUES.index("curate")):
            await pilot.press("down")
        await pilot.press("ctrl+n", "ctrl+n")  # -> dataset (the demo sums), -> settings
        await pilot.pause()
        screen = app.screen
        form = screen.query_one(SchemaForm)
        assert {"curate.samples", "curate.min_score", "curate.min_margin"} <= set(form.fields)
        assert "train.learning_rate" not in form.fields  # it trains nothing
        await _refused_then_taken(pilot, screen, "curate-samples", "1", "4", "greater than or equal to 2")
        saved = tomllib.loads(screen.draft.to_toml())
        assert saved["curate"]["samples"] == 4 and saved["curate"]["rewards"][0]["name"] == "math_answer"
