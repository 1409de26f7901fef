"""Starting a run from a past run's trained model: `model.name_or_path = "runs/sft-1"` (or its final/).

The worker merges the past run's LoRA adapter into a 16-bit copy of its base inside the new run's folder
(RunDir.start_model) and trains a fresh adapter on that; everything that reads the model before the worker
(validate, estimate, the tokenizer of the data checks) follows the run to its base.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from smoltrain.cli import main
from smoltrain.config.load import load_config
from smoltrain.config.presets import PROJECT_ROOT
from smoltrain.rundir import RunDir, read_events
from tests.conftest import TINY_MODEL, FinishedRun, train_in_process

pytestmark = pytest.mark.slow

SFT_PRESET = PROJECT_ROOT / "presets" / "demo-sft.toml"
QUICK = ["train.max_steps=3", "data.eval_fraction=0", "train.save_steps=3"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> FinishedRun:
    run = train_in_process(SFT_PRESET, tmp_path_factory.mktemp("first"), QUICK)
    assert run.exit_code == 0, run.of_type("run_failed")
    return run


@pytest.fixture(scope="module")
def second_run(first_run, tmp_path_factory) -> FinishedRun:
    return train_in_process(SFT_PRESET, tmp_path_factory.mktemp("second"),
                            [*QUICK, f"model.name_or_path={first_run.run_dir}"])  # fmt: skip


def test_a_run_folder_starts_from_its_adapter_merged_into_its_base(first_run, second_run):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert second_run.exit_code == 0, second_run.of_type("run_failed")
    for kind in ("run_started", "stage_started"):
        said = second_run.of_type(kind)[0].model
        assert said.startswith(f"from run {first_run.run_dir.name} (its adapter merged into"), said
        assert "tiny-llama" in said
    start = RunDir(second_run.run_dir).start_model
    assert (start / "config.json").is_file() and (start / "tokenizer_config.json").is_file()

    # What a user relies on: the new run starts from exactly the model the first run trained.
    tokenizer = AutoTokenizer.from_pretrained(first_run.run_dir / "final")
    ids = tokenizer("What is 2 + 3? The answer is five.", return_tensors="pt")
    base = AutoModelForCausalLM.from_pretrained(TINY_MODEL, dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, str(first_run.run_dir / "final")).eval()
    merged = AutoModelForCausalLM.from_pretrained(start, dtype=torch.float32).eval()
    with torch.no_grad():
        expected, got = tuned(**ids).logits, merged(**ids).logits
    assert torch.allclose(expected, got, atol=1e-4), (expected - got).abs().max()
    plain = AutoModelForCausalLM.from_pretrained(TINY_MODEL, dtype=torch.float32).eval()
    with torch.no_grad():
        assert not torch.allclose(plain(**ids).logits, got, atol=1e-4)  # the first run's training is in it

    # A fresh adapter on the merged copy, which smoltrain's chat loader finds again.
    final = second_run.run_dir / "final"
    assert json.loads((final / "adapter_config.json").read_text())["base_model_name_or_path"] == str(start)
    from smoltrain.engine.chat import find_model, load_model

    target = find_model(second_run.run_dir)
    assert target.base == str(start)
    chat = load_model(target)
    assert chat.model is not None and chat.tokenizer is not None
    # Evaluation's "base" and chat --compare's "before" are what this run trained on, not the run folder named.
    from smoltrain.config.load import load_config
    from smoltrain.engine.evaluate import Subject, load_subject

    run = RunDir(second_run.run_dir)
    assert load_subject(run, load_config(run.config), Subject("base", "base", 0))[2] == str(start)


def test_resume_does_not_merge_again(second_run, monkeypatch):
    from smoltrain.engine import run as engine_run
    from smoltrain.engine.control import StopFlag
    from smoltrain.rundir import EventWriter

    def merge_again(*args, **kwargs):
        raise AssertionError("merged the starting model again")

    monkeypatch.setattr(engine_run, "merge_adapter", merge_again)
    run_dir = second_run.run_dir
    emit = EventWriter(run_dir / "events.jsonl")
    try:
        engine_run.run(load_config(run_dir / "config.toml"), run_dir, emit, StopFlag(), resume=True)
    finally:
        emit.close()
    assert read_events(run_dir / "events.jsonl")[-1].type == "run_finished"


def test_a_merge_cut_off_is_done_again(first_run, tmp_path, monkeypatch):
    from smoltrain.engine import run as engine_run

    real_merge = engine_run.merge_adapter

    def killed_after_writing(*args, **kwargs):
        real_merge(*args, **kwargs)
        raise KeyboardInterrupt  # as if killed before the merge was known complete

    run = RunDir(tmp_path / "runs" / "next")
    run.root.mkdir(parents=True)
    cfg = load_config(SFT_PRESET, [f"model.name_or_path={first_run.run_dir / 'final'}"])  # its final/ works too
    monkeypatch.setattr(engine_run, "merge_adapter", killed_after_writing)
    with pytest.raises(KeyboardInterrupt):
        engine_run.starting_model(cfg, run)
    assert not run.start_model.exists()  # a resume cannot take a cut-off merge for a complete one
    monkeypatch.setattr(engine_run, "merge_adapter", real_merge)
    policy, said = engine_run.starting_model(cfg, run)
    assert policy == str(run.start_model) and (run.start_model / "model.safetensors").is_file()
    assert said.startswith(f"from run {first_run.run_dir.name} (its adapter merged into")
    assert sorted(p.name for p in run.root.iterdir()) == [run.start_model.name]


def test_validate_and_estimate_accept_a_run_folder(first_run, capsys):
    given = ["--set", f"model.name_or_path={first_run.run_dir}"]
    assert main(["validate", str(SFT_PRESET), *given]) == 0
    assert main(["estimate", str(SFT_PRESET), *given, "--gpu-mem", "12"]) == 0
    out = capsys.readouterr().out
    assert "ok:" in out and "params" in out


def test_a_full_fine_tune_is_used_as_it_is(tmp_path):
    import shutil

    from smoltrain.engine.run import starting_model

    past = RunDir(tmp_path / "runs" / "full-1")
    shutil.copytree(TINY_MODEL, past.final)
    past.config.write_text((SFT_PRESET).read_text())
    cfg = load_config(SFT_PRESET, [f"model.name_or_path={past.root}"])
    run = RunDir(tmp_path / "runs" / "next")
    policy, said = starting_model(cfg, run)
    assert policy == str(past.final) and not run.start_model.exists()
    assert said.startswith("from run full-1 (its fully fine-tuned model")


def _smoltrain(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smoltrain.cli", *args], capture_output=True, text=True, timeout=120)


def test_an_adapter_whose_base_is_gone_fails_with_one_clear_line(tmp_path: Path):
    adapter = tmp_path / "old-run" / "final"
    adapter.mkdir(parents=True)
    gone = tmp_path / "models" / "deleted-base"
    (adapter / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": str(gone)}))  # fmt: skip
    for extra in (["validate"], ["estimate", "--gpu-mem", "12"]):
        result = _smoltrain(extra[0], str(SFT_PRESET), "--set", f"model.name_or_path={adapter}", *extra[1:])
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        first = result.stderr.strip().splitlines()[0]
        assert "model.name_or_path" in first and str(gone) in first and "base" in first, result.stderr
