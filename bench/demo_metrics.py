"""Summarise a finished demo run's events into the numbers the demo promises.

    python bench/demo_metrics.py runs/<name>

Prints, per stage: SFT first/last eval loss and the drop; reward model's last eval accuracy; DPO's
last eval reward accuracy and margins (first/last); GRPO's mean task reward over the first and
last fifth of its steps; and the run's wall time. Reads events.jsonl only (no torch).
"""

from __future__ import annotations

import sys
from pathlib import Path
from statistics import mean

from smoltrain.engine.events import (
    Eval,
    Metrics,
    RunFinished,
    StageStarted,
)
from smoltrain.rundir import RunDir, read_events


def summarise(run_dir: Path) -> list[str]:
    events = read_events(RunDir(run_dir).events)
    stages = {e.stage: e.technique for e in events if isinstance(e, StageStarted)}
    lines = []
    for stage, technique in stages.items():
        evals = [e.values for e in events if isinstance(e, Eval) and e.stage == stage]
        metrics = [e.values for e in events if isinstance(e, Metrics) and e.stage == stage]
        if technique == "sft" and evals:
            first, last = evals[0]["eval_loss"], evals[-1]["eval_loss"]
            lines.append(f"sft: eval loss {first:.3f} -> {last:.3f} ({(first - last) / first:.0%} lower)")
        elif technique == "reward" and evals:
            lines.append(f"reward: eval accuracy {evals[0]['eval_accuracy']:.3f} -> {evals[-1]['eval_accuracy']:.3f}")
        elif technique == "dpo" and evals:
            acc = [e["eval_rewards/accuracies"] for e in evals]
            margins = [e["eval_rewards/margins"] for e in evals]
            lines.append(f"dpo: eval reward accuracy {acc[0]:.3f} -> {acc[-1]:.3f}; margins {margins[0]:.3f} -> {margins[-1]:.3f}")
        elif technique == "grpo":
            task = [m.get("rewards/math_answer/mean", m.get("reward")) for m in metrics if "reward" in m]
            fifth = max(1, len(task) // 5)
            head, tail = mean(task[:fifth]), mean(task[-fifth:])
            lines.append(f"grpo: task reward first fifth {head:.3f}, last fifth {tail:.3f} (+{tail - head:.3f}) over {len(task)} logs")
    finished = [e for e in events if isinstance(e, RunFinished)]
    if finished:
        lines.append(f"wall time: {finished[0].duration_s:.0f} s ({finished[0].status})")
    return lines


if __name__ == "__main__":
    print("\n".join(summarise(Path(sys.argv[1]))))
