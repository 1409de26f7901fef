"""A real QLoRA SFT run of the bundled tiny model, through the runner and the worker process."""

from __future__ import annotations

import json

import pytest

from smoltrain.config.load import load_config
from tests.conftest import run_preset, train_in_process

pytestmark = pytest.mark.slow


def test_qlora_sft_trains_saves_and_reports(sft_preset, tmp_path):
    qlora = ["quantization.mode=4bit", "train.learning_rate=5e-4"]
    run = run_preset(sft_preset, tmp_path, [*qlora, "train.max_steps=20", "train.eval_steps=10", "train.save_steps=10"])
    assert run.exit_code == 0, (run.run_dir / "worker.log").read_text()[-3000:]

    started = run.of_type("run_started")[0]
    assert started.active["4bit"].startswith("on (nf4")
    assert started.active["lora"].startswith("r=16")
    assert started.active["liger"] == "off: no CUDA"
    assert started.active["loss_on"] == "assistant turns only"
    assert 0 < started.trainable_params < started.total_params

    losses = run.losses()
    assert len(losses) >= 5
    assert sum(losses[-2:]) / 2 < 0.95 * sum(losses[:2]) / 2, f"training loss did not fall: {losses}"
    evals = run.eval_losses()
    assert len(evals) == 3 and evals[-1] < evals[0], f"eval loss did not fall: {evals}"

    metrics = run.of_type("metrics")
    assert all(m.max_steps == 20 for m in metrics)
    assert any("tokens_per_second" in m.values and m.values["tokens_per_second"] > 0 for m in metrics)
    assert all("memory_rss_gb" in m.values for m in metrics)

    finished = run.of_type("run_finished")[0]
    assert finished.status == "completed" and finished.step == 20
    final = run.run_dir / "final"
    assert (final / "adapter_model.safetensors").exists() and (final / "tokenizer_config.json").exists()
    assert json.loads((final / "adapter_config.json").read_text())["r"] == 16
    assert [c.step for c in run.of_type("checkpoint")] == [10, 20]
    assert (run.run_dir / "checkpoints" / "checkpoint-20" / "optimizer.pt").exists()
    # The run folder's config is the resolved, re-runnable preset.
    assert load_config(run.run_dir / "config.toml").train.max_steps == 20


def test_the_saved_adapter_loads_and_generates(sft_preset, tmp_path):
    run = train_in_process(sft_preset, tmp_path, ["train.max_steps=5", "data.eval_fraction=0"])
    assert run.exit_code == 0
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    final = run.run_dir / "final"
    tokenizer = AutoTokenizer.from_pretrained(final)
    model = AutoPeftModelForCausalLM.from_pretrained(final)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)  # fmt: skip
    out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert out.shape[1] > prompt["input_ids"].shape[1]


def test_broken_data_fails_as_a_user_error(sft_preset, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": oops}\n')
    run = train_in_process(sft_preset, tmp_path, [f"data.path={bad}"])  # the worker's exit codes: test_faults.py
    assert run.exit_code == 2
    failed = run.of_type("run_failed")[0]
    assert failed.user_error and "line 2" in failed.message and str(bad) in failed.message


def test_missing_model_fails_as_a_user_error(sft_preset, tmp_path):
    run = train_in_process(sft_preset, tmp_path, [f"model.name_or_path={tmp_path / 'no-such-model'}"])
    assert run.exit_code == 2
    failed = run.of_type("run_failed")[0]
    assert failed.user_error and "no-such-model" in failed.message and failed.hint
