"""The worker's callback, driven with transformers' own TrainerState and TrainingArguments (no training):
throttled progress events between logs, a resume's first step, and the GPU's live figures from NVML."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from transformers import TrainerControl, TrainerState, TrainingArguments

from smoltrain.engine import callbacks
from smoltrain.engine.callbacks import EventCallback
from smoltrain.engine.control import StopFlag
from smoltrain.engine.events import Metrics, Progress


@pytest.fixture
def args(tmp_path) -> TrainingArguments:
    return TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def drive(args: TrainingArguments, steps: int, seconds_per_step: float, begin_at: int = 0, max_steps: int = 100):
    emitted: list = []
    clock = Clock()
    callback = EventCallback(emitted.append, StopFlag(), stage=1)
    callback._clock = clock
    state, control = TrainerState(max_steps=max_steps, global_step=begin_at), TrainerControl()
    callback.on_train_begin(args, state, control)
    for _ in range(steps):
        clock.now += seconds_per_step
        state.global_step += 1
        callback.on_step_end(args, state, control)
    return [e for e in emitted if isinstance(e, Progress)]


def test_progress_is_sent_at_most_about_once_a_second_plus_the_first_and_last_step(args):
    sent = drive(args, steps=100, seconds_per_step=0.1)
    steps = [e.step for e in sent]
    assert steps[:2] == [0, 1] and steps[-1] == 100
    assert 10 <= len(sent) <= 14, steps  # 10 s of training
    assert all(e.max_steps == 100 and e.stage == 1 for e in sent)


def test_slow_steps_each_send_progress(args):
    assert [e.step for e in drive(args, steps=5, seconds_per_step=3.0, max_steps=5)] == [0, 1, 2, 3, 4, 5]


def test_a_resumed_stage_says_its_step_when_training_begins(args):
    sent = drive(args, steps=1, seconds_per_step=0.1, begin_at=20)
    assert [e.step for e in sent] == [20, 21]


class FakeNVMLError(Exception):
    pass


def fake_pynvml(fail: bool = False) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    module.NVMLError = FakeNVMLError  # type: ignore[attr-defined]
    module.NVML_TEMPERATURE_GPU = 0  # type: ignore[attr-defined]

    def init() -> None:
        if fail:
            raise FakeNVMLError("Driver Not Loaded")

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: f"gpu{index}"  # type: ignore[attr-defined]
    module.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=87)  # type: ignore[attr-defined]
    memory = types.SimpleNamespace(used=20.5 * 2**30, total=24 * 2**30)
    module.nvmlDeviceGetMemoryInfo = lambda h: memory  # type: ignore[attr-defined]
    module.nvmlDeviceGetTemperature = lambda h, sensor: 71  # type: ignore[attr-defined]
    return module


def log_once(args: TrainingArguments) -> Metrics:
    emitted: list = []
    callback = EventCallback(emitted.append, StopFlag())
    state, control = TrainerState(max_steps=10, global_step=5), TrainerControl()
    callback.on_train_begin(args, state, control)
    callback.on_log(args, state, control, logs={"loss": 1.0})
    return next(e for e in emitted if isinstance(e, Metrics))


@pytest.fixture
def on_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda: 3 * 2**30)
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda: 4 * 2**30)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_metrics_carry_the_gpus_live_figures_from_nvml(args, on_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    values = log_once(args).values
    assert values["gpu_util_pct"] == 87 and values["gpu_temp_c"] == 71
    assert values["gpu_mem_used_gb"] == pytest.approx(20.5) and values["gpu_mem_total_gb"] == pytest.approx(24.0)
    assert values["memory_allocated_gb"] == 3.0, "next to the run's own peak"


def test_an_nvml_error_means_no_figures_never_a_failed_run(args, on_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(fail=True))
    values = log_once(args).values
    assert not any(k.startswith("gpu_") for k in values) and values["loss"] == 1.0


def test_without_nvidia_ml_py_or_without_cuda_there_are_no_gpu_figures(args, on_cuda, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # not installed: importing it raises ImportError
    assert not any(k.startswith("gpu_") for k in log_once(args).values)
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not any(k.startswith("gpu_") for k in log_once(args).values)


def test_the_gpu_is_found_through_cuda_visible_devices(on_cuda, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)
    asked: list[int] = []
    module = fake_pynvml()
    module.nvmlDeviceGetHandleByIndex = lambda index: asked.append(index) or "gpu"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert callbacks.GpuFigures().read()["gpu_util_pct"] == 87 and asked == [3]
