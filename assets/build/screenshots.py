"""Take the README's screenshots of the terminal app (SVG, into assets/screenshots/).

    smoltrain demo                                    # once, in some folder: makes runs/demo-<time>
    smoltrain run demo-sft                            # and an SFT run, for the Result tab's before/after
    python assets/build/screenshots.py runs/demo-<time> [runs/demo-sft-<time>]

Run it from the folder that holds `runs/`: the home screen lists those runs. It walks the wizard
(demo model, SFT, the demo chats with their preview, settings, review) and opens the given run's
curves, samples and evaluation, and Compare of it with two runs beside it, at 100x32, through Textual's Pilot: what a user sees, without a terminal.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.screens.wizard.data_step import DataStep

OUT = Path(__file__).resolve().parents[1] / "screenshots"
SIZE = (100, 32)


async def take(run_dir: Path) -> None:
    app = SmoltrainApp(runs_dir=str(run_dir.parent))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.5)
        app.save_screenshot("home.svg", str(OUT))
        await pilot.press("n", "ctrl+n", "ctrl+n")  # the demo model, SFT, then the dataset step
        step = app.screen.query_one(DataStep)
        for _ in range(600):  # the preview loads transformers in a thread: up to a minute
            await pilot.pause(0.1)
            if step.preview is not None:
                break
        app.screen.query_one("#preview-summary").scroll_visible(top=True, animate=False)
        await pilot.pause(0.3)
        app.save_screenshot("wizard-dataset.svg", str(OUT))
        await pilot.press("ctrl+n")
        await pilot.pause(1.5)  # the memory meter's estimate
        app.save_screenshot("wizard-settings.svg", str(OUT))
        await pilot.press("ctrl+n")
        await pilot.pause(0.5)
        app.save_screenshot("wizard-review.svg", str(OUT))
        await pilot.press(*["escape"] * 5)
        await pilot.pause(0.3)
        app.open_run(run_dir)
        await pilot.pause(1)
        app.save_screenshot("run-curves.svg", str(OUT))
        await pilot.press("2")
        await pilot.pause(0.3)
        app.save_screenshot("run-samples.svg", str(OUT))


async def _open_tab(app: SmoltrainApp, pilot: Any, run_dir: Path, key: str) -> None:
    """The run's screen, its events read, on the tab of `key`."""
    app.open_run(run_dir)
    await pilot.pause(1)
    await pilot.press(key)
    await pilot.pause(0.5)


async def take_eval(run_dir: Path) -> None:
    """The demo run's Eval tab: the base and each stage on the held-out sums, and the judge."""
    app = SmoltrainApp(runs_dir=str(run_dir.parent))
    async with app.run_test(size=(100, 34)) as pilot:
        await _open_tab(app, pilot, run_dir, "6")
        app.save_screenshot("run-eval.svg", str(OUT))


async def take_result(run_dir: Path) -> None:
    """A finished SFT run's Result tab: its before/after answers side by side, and the exports."""
    app = SmoltrainApp(runs_dir=str(run_dir.parent))
    async with app.run_test(size=(110, 40)) as pilot:
        await _open_tab(app, pilot, run_dir, "4")
        app.save_screenshot("run-result.svg", str(OUT))
        await pilot.press("5")
        await pilot.click("#try-prompt")
        await pilot.press(*"Who is the friend of the quax?", "enter")
        for _ in range(600):  # the generation process loads torch and the model: up to a minute
            await pilot.pause(0.1)
            if "Done" in str(app.screen.query_one("#try-status").render()):
                break
        app.save_screenshot("run-try-it.svg", str(OUT))
        app.screen.try_it.stop_server()


async def take_compare(run_dir: Path) -> None:
    """Compare: the given run and the other runs beside it (up to three in all), one colour per run."""
    from smoltrain.tui.screens.compare import CompareScreen

    others = sorted(p for p in run_dir.parent.iterdir() if p != run_dir and (p / "events.jsonl").exists())
    app = SmoltrainApp(runs_dir=str(run_dir.parent))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause(0.3)
        app.push_screen(CompareScreen([run_dir, *others[:2]]))
        await pilot.pause(1)
        app.save_screenshot("compare.svg", str(OUT))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or not all((Path(a) / "events.jsonl").exists() for a in sys.argv[1:]):
        sys.exit(__doc__)
    asyncio.run(take(Path(sys.argv[1]).resolve()))
    asyncio.run(take_eval(Path(sys.argv[1]).resolve()))
    asyncio.run(take_compare(Path(sys.argv[1]).resolve()))
    if len(sys.argv) == 3:
        asyncio.run(take_result(Path(sys.argv[2]).resolve()))
    print(f"screenshots in {OUT}")
