"""The settings step's memory meter: how much GPU memory the draft needs, against the card.

The numbers come from smoltrain.memory (`estimate(cfg, gpu_mem_gb)`, `detect_gpu_memory_gb()`),
owned by the memory model. This widget is the one place the TUI touches it: if that package is
missing or fails, the meter says so and the wizard carries on. The estimate may read a hub model's
config.json over the network, so it runs in a worker thread. Never imports torch.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from textual import work
from textual.widgets import Static

from smoltrain.config.schema import RunConfig

_BAR = 30


def _memory_module() -> ModuleType | None:
    try:
        return importlib.import_module("smoltrain.memory")
    except ImportError:
        return None


class MemoryMeter(Static):
    """`update_for(cfg)` redraws the meter; a config that does not validate shows why there is none."""

    DEFAULT_CSS = "MemoryMeter { height: auto; padding: 0 1; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._gpu: float | None = None
        self._gpu_known = False

    def update_for(self, cfg: RunConfig | None) -> None:
        if _memory_module() is None:
            self.update("[dim]memory estimate: not available (smoltrain.memory is missing)[/]")
        elif cfg is None:
            self.update("[dim]memory estimate: fix the settings first[/]")
        else:
            self._estimate(cfg)

    @work(thread=True, exclusive=True, group="memory")
    def _estimate(self, cfg: RunConfig) -> None:
        memory = _memory_module()
        assert memory is not None
        try:
            if not self._gpu_known:
                env = os.environ.get("SMOLTRAIN_GPU_MEM_GB")
                self._gpu, self._gpu_known = (float(env) if env else memory.detect_gpu_memory_gb()), True
            est = memory.estimate(cfg, self._gpu)
            text = self._meter(est.total_gb)
        except Exception as exc:  # noqa: BLE001 - the meter must never take the wizard down
            text = f"[dim]memory estimate unavailable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}[/]"
        self.app.call_from_thread(self.update, text)

    def _meter(self, total_gb: float) -> str:
        if not self._gpu:
            return f"GPU memory needed: ~{total_gb:.1f} GB [dim](no NVIDIA GPU found here)[/]"
        share = total_gb / self._gpu
        color = "green" if share < 0.8 else "yellow" if share <= 1.0 else "red"
        filled = round(min(1.0, share) * _BAR)
        verdict = "fits" if share <= 1.0 else "does NOT fit: lower micro_batch_size or max_length"
        return f"GPU memory [{color}]{'█' * filled}{'░' * (_BAR - filled)}[/] {total_gb:.1f} of {self._gpu:.0f} GB: {verdict}"
