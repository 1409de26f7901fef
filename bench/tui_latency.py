"""How fast the terminal app shows what the engine logs, and whether it still answers keys.

    python bench/tui_latency.py [--events 20]

Opens the run screen on a fresh run folder (through Textual's Pilot, no terminal needed), appends
one metrics event at a time to its events.jsonl, as the worker does, and times how long until the
loss plot has drawn it; then times a key press (a tab switch) while the screen keeps polling.
Prints the median and the worst. Issue target: metrics on the plot within 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path

from smoltrain.engine.events import Metrics, RunStarted, StageStarted
from smoltrain.tui.app import SmoltrainApp
from smoltrain.tui.widgets.plots import PlotGrid


def _new_run(root: Path) -> Path:
    run = root / "runs" / "latency"
    run.mkdir(parents=True)
    (run / "config.toml").write_text('[model]\nname_or_path = "x"\n[data]\npath = "y"\n')
    started = RunStarted(run_dir=str(run), name=run.name, model="x", device="cpu", dtype="float32", stages=["sft"],
                         active={}, trainable_params=1, total_params=2)  # fmt: skip
    stage = StageStarted(stage=0, technique="sft", max_steps=1000, train_rows=1, eval_rows=0, data="d")
    (run / "events.jsonl").write_text(started.to_json() + "\n" + stage.to_json() + "\n")
    return run


async def measure(events: int) -> tuple[list[float], float]:
    root = Path(tempfile.mkdtemp())
    os.chdir(root)
    run = _new_run(root)
    app = SmoltrainApp(runs_dir="runs")
    latencies: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        app.open_run(run)
        await pilot.pause(0.5)
        grid = app.screen.query_one(PlotGrid)
        for step in range(1, events + 1):
            start = time.perf_counter()
            with (run / "events.jsonl").open("a") as f:
                f.write(Metrics(step=step, max_steps=1000, loss=2.0 / step).to_json() + "\n")
            while grid._drawn.get("loss") != (step,):
                await asyncio.sleep(0.005)
            await pilot.pause()  # and painted
            latencies.append(time.perf_counter() - start)
        start = time.perf_counter()
        await pilot.press("3")
        await pilot.pause()
        key = time.perf_counter() - start
    return latencies, key


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20)
    latencies, key = asyncio.run(measure(parser.parse_args().events))
    print(f"metric -> plot: median {statistics.median(latencies) * 1000:.0f} ms, worst {max(latencies) * 1000:.0f} ms "
          f"over {len(latencies)} events; a key answered in {key * 1000:.0f} ms")  # fmt: skip
