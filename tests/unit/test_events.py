"""Events: every type survives the JSON round trip (the file they live in: test_rundir.py)."""

from __future__ import annotations

import pytest

from smoltrain.engine import events as ev

SAMPLES = [
    ev.RunStarted(run_dir="/r", name="r", model="m", device="cpu", dtype="float32", stages=["sft"],
                  active={"4bit": "on (nf4)", "liger": "off: no CUDA"}, trainable_params=10, total_params=100),
    ev.StageStarted(stage=0, technique="sft", max_steps=10, train_rows=90, eval_rows=10, data="90 rows"),
    ev.Metrics(step=3, max_steps=10, loss=1.5, learning_rate=1e-4, **{"rewards/margins": 0.3}),
    ev.Eval(step=3, max_steps=10, eval_loss=1.2),
    ev.Progress(step=4, max_steps=10, stage=1),
    ev.Sample(step=3, prompt="What is 2+2?", completion="4 ✓", reward=1.0, label="best"),
    ev.Checkpoint(step=5, path="/r/checkpoints/checkpoint-5"),
    ev.Warning(message="loss is nan", hint="lower the learning rate", step=4),
    ev.Warning(message="trl: All reward functions returned None", source="library"),
    ev.EvalResult(subject="dpo", path="/r/eval/dpo.json", scores={"math · math_answer": 0.76, "judge · math vs sft": 0.55}),
    ev.Curated(stage=1, prompts=320, samples=8, scores={"mean": 0.4, "min": 0.0, "p25": 0.0, "median": 0.0, "p75": 1.0,
               "max": 1.0}, sft_rows=300, below_min_score=20, pairs=250, no_spread=70, below_margin=0, folder="/r/c"),
    ev.StageFinished(stage=0, technique="sft", step=10, output_dir="/r/final"),
    ev.RunFinished(status="completed", step=10, final_dir="/r/final", duration_s=3.2),
    ev.RunFinished(status="stopped", step=4, final_dir=None, duration_s=1.0),  # stopped at once: nothing saved
    ev.RunFailed(error_type="DataError", message="x.jsonl: line 3: not valid JSON", hint="fix it", user_error=True),
]  # fmt: skip


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_round_trip(event):
    again = ev.parse_event(event.to_json())
    assert again == event
    assert again.type in ev.EVENT_TYPES


def test_every_contract_type_has_a_sample():
    assert {e.type for e in SAMPLES} == set(ev.EVENT_TYPES)


def test_metrics_keep_trl_names_flat():
    line = ev.Metrics(step=1, max_steps=2, loss=0.5, **{"rewards/chosen": 1.0}).to_json()
    assert '"rewards/chosen": 1.0' in line and '"loss": 0.5' in line
    assert ev.parse_event(line).values == {"loss": 0.5, "rewards/chosen": 1.0}


def test_unknown_type_is_rejected():
    with pytest.raises(ValueError):
        ev.parse_event('{"type": "nonsense", "time": 1}')


def test_metrics_carry_the_gpu_figures_flat():
    line = ev.Metrics(step=1, max_steps=2, gpu_util_pct=87.0, gpu_mem_used_gb=20.5, gpu_mem_total_gb=24.0,
                      gpu_temp_c=71.0).to_json()  # fmt: skip
    assert ev.parse_event(line).values == {"gpu_util_pct": 87.0, "gpu_mem_used_gb": 20.5, "gpu_mem_total_gb": 24.0,
                                           "gpu_temp_c": 71.0}  # fmt: skip


def test_progress_is_small_and_has_no_values():
    """It is written about once a second: a step, not a metrics line."""
    event = ev.Progress(step=4, max_steps=10)
    assert set(ev.parse_event(event.to_json()).model_dump()) == {"type", "time", "step", "max_steps", "stage"}
    with pytest.raises(ValueError):
        ev.parse_event('{"type": "progress", "time": 1, "step": 1, "max_steps": 2, "loss": 0.5}')
