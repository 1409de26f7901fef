"""What smoltrain hands accelerate and the Trainer for more than one process, without launching any: the
launcher's command line, each strategy's TrainingArguments, which strategy `auto` picks on a GPU, and the
exit code a front end reports when the launcher only knows that some rank failed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from smoltrain import runner
from smoltrain.config.load import load_config
from smoltrain.config.presets import PRESETS_DIR, PROJECT_ROOT
from smoltrain.engine import distributed
from smoltrain.engine.events import RunFailed, RunFinished
from smoltrain.errors import ConfigError
from smoltrain.rundir import EventWriter

LLAMA_8B = PROJECT_ROOT / "bench" / "model_configs" / "llama-3.1-8b" / "config.json"


@pytest.fixture
def two_ranks(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)


def test_one_process_is_the_worker_itself_and_n_go_through_accelerates_launcher(tmp_path):
    assert runner.worker_command(tmp_path, False, 1) == [sys.executable, "-m", "smoltrain.engine.worker", str(tmp_path)]
    cmd = runner.worker_command(tmp_path, True, 2)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "2" and "--multi_gpu" in cmd
    assert cmd[-4:] == ["-m", "smoltrain.engine.worker", str(tmp_path), "--resume"]
    # Two runs at once must not meet at the same rendezvous port.
    port = int(cmd[cmd.index("--main_process_port") + 1])
    assert port > 0 and port != 29500


def test_the_launch_command_parses_as_accelerate_launch_arguments(tmp_path):
    """accelerate's own parser reads what the runner passes (a renamed flag would fail here, not on a 2-GPU box)."""
    from accelerate.commands.launch import launch_command_parser

    args = launch_command_parser().parse_args(runner.worker_command(tmp_path, False, 2)[3:])
    assert args.num_processes == 2 and args.multi_gpu and args.module
    assert args.training_script == "smoltrain.engine.worker" and args.training_script_args == [str(tmp_path)]


def test_each_strategy_becomes_the_trainers_own_arguments(two_ranks):
    assert distributed.strategy_arguments("ddp") == {"ddp_find_unused_parameters": False}
    fsdp = distributed.strategy_arguments("fsdp")
    assert fsdp["fsdp"] == "full_shard auto_wrap" and fsdp["fsdp_config"]["use_orig_params"] is False
    zero3 = distributed.strategy_arguments("deepspeed-zero3")["deepspeed"]
    assert zero3["zero_optimization"]["stage"] == 3 and zero3["train_micro_batch_size_per_gpu"] == "auto"
    assert distributed.strategy_arguments("deepspeed-zero2")["deepspeed"]["zero_optimization"]["stage"] == 2


def test_one_process_adds_nothing_and_a_users_accelerate_config_wins(monkeypatch, two_ranks):
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed.strategy_arguments("ddp") == {}  # their FSDP plugin settings, not ours
    assert distributed.launcher_chose_strategy() == "fsdp"
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    assert distributed.strategy_arguments("fsdp") == {}


def test_auto_is_ddp_when_one_gpu_holds_the_run_and_fsdp_when_not(monkeypatch, tmp_path, two_ranks):
    import torch

    from smoltrain.engine.distributed import resolve_strategy

    model = tmp_path / "llama-8b"
    model.mkdir()
    shutil.copy(LLAMA_8B, model / "config.json")
    cfg = load_config(PRESETS_DIR / "sft-llama3.1-8b.toml", [f"model.name_or_path={model}"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for gib, expected in ((24, "ddp"), (8, "fsdp")):
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i, gib=gib: SimpleNamespace(total_memory=gib * 2**30))
        assert resolve_strategy(cfg) == expected, gib  # the preset says gpus = 1: the launched count is used
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert resolve_strategy(cfg) == "single"


def test_deepspeed_asked_for_but_missing_is_one_line_naming_the_key(monkeypatch, two_ranks):
    import importlib.util

    from smoltrain.engine.distributed import resolve_strategy

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    cfg = load_config(PRESETS_DIR / "demo-sft.toml", ["distributed.strategy=deepspeed-zero2"])
    with pytest.raises(ConfigError, match="distributed.strategy") as refused:
        resolve_strategy(cfg)
    assert "pip install deepspeed" in refused.value.hint


@pytest.mark.parametrize(("end", "expected"), [
    (RunFinished(status="stopped", step=3, final_dir=None, duration_s=1.0), 0),
    (RunFailed(error_type="ConfigError", message="bad", user_error=True), 2),
    (RunFailed(error_type="ValueError", message="bug", user_error=False), 1),
])  # fmt: skip
def test_a_multi_process_runs_exit_code_comes_from_its_end_event(tmp_path, end, expected):
    """The launcher exits 1 whichever rank failed, and 143 once it has stopped them: the run's own end decides."""
    (tmp_path / "events.jsonl").write_text(json.dumps({"type": "warning", "time": 0, "message": "old attempt"}) + "\n")
    offset = (tmp_path / "events.jsonl").stat().st_size
    emit = EventWriter(tmp_path / "events.jsonl")
    emit(end)
    emit.close()
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    handle = runner.RunHandle(run_dir=tmp_path, process=process, events_offset=offset, processes=2)
    assert handle.wait() == expected


def test_a_launcher_that_died_without_an_end_keeps_its_own_code(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(7)"])
    assert runner.RunHandle(run_dir=tmp_path, process=process, processes=2).wait() == 7


def test_grpo_groups_count_every_process(tmp_path):
    """TRL fills a generation batch across all processes: 4 prompts x 1 x 2 GPUs hold one group of 8."""
    preset = tmp_path / "grpo.toml"
    preset.write_text(f"""
[model]
name_or_path = "{PROJECT_ROOT / 'assets' / 'tiny-llama'}"
[data]
path = "{PROJECT_ROOT / 'assets' / 'data' / 'grpo.jsonl'}"
[train]
technique = "grpo"
micro_batch_size = 4
grad_accum = 1
[grpo]
num_generations = 8
[[grpo.rewards]]
name = "math_answer"
""")
    assert load_config(preset, ["distributed.gpus=2"]).distributed.gpus == 2
    with pytest.raises(ConfigError, match="grpo.num_generations"):
        load_config(preset)


def test_cli_refuses_a_gpu_count_below_one(capsys):
    from smoltrain.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["run", "demo-sft", "--gpus", "0"])
    assert exited.value.code == 2
    assert "--gpus" in capsys.readouterr().err


def test_a_checkpoint_of_two_processes_is_not_resumed_on_one(tmp_path, monkeypatch):
    """A user's own launch with another process count (the runner refuses it earlier, from config.toml)."""
    checkpoint = tmp_path / "checkpoint-5"
    checkpoint.mkdir()
    for rank in (0, 1):
        (checkpoint / f"rng_state_{rank}.pth").write_bytes(b"")
    monkeypatch.setenv("WORLD_SIZE", "1")
    with pytest.raises(ConfigError, match="saved by 2 processes, and this resume runs 1") as refused:
        distributed.check_processes(checkpoint)
    assert "--gpus 2" in refused.value.hint
    monkeypatch.setenv("WORLD_SIZE", "2")
    distributed.check_processes(checkpoint)  # the same count: on it goes
