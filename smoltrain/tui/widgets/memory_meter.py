"""The settings step's memory meter: how much GPU memory the draft needs, against the card; and
"fit to my GPU", which asks the memory model for the batch shape that fits and posts it as `Fitted`.

The numbers come from smoltrain.memory (`estimate`, `fit`, `detect_gpu_memory_gb`), imported on
first use, off the app's start-up path; if it fails (a model whose config.json cannot be found),
the meter says why and the wizard carries on. The estimate may read a hub model's config.json over
the network, so it runs in a worker thread. Sizes are in GiB (2**30 bytes), as smoltrain.memory
computes them and `smoltrain estimate` prints them. Never imports torch.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

from textual import work
from textual.message import Message
from textual.widgets import Static

from smoltrain.config.schema import RunConfig

_BAR = 18  # the whole meter line, verdict included, fits in 80 columns


class MemoryMeter(Static):
    """`update_for(cfg)` redraws the meter; a config that does not validate shows why there is none."""

    DEFAULT_CSS = "MemoryMeter { height: auto; padding: 0 1; }"

    class Fitted(Message):
        """The overrides (dotted keys) that make the draft fit, and the memory model's explanation."""

        def __init__(self, overrides: dict[str, Any], explanation: str) -> None:
            super().__init__()
            self.overrides, self.explanation = overrides, explanation

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._gpu: float | None = None
        self._gpu_known = False

    def update_for(self, cfg: RunConfig | None) -> None:
        if cfg is None:
            self.update("[dim]memory estimate: fix the settings first[/]")
        else:
            self._estimate(cfg)

    @work(thread=True, exclusive=True, group="memory")
    def _estimate(self, cfg: RunConfig) -> None:
        from smoltrain import memory

        try:
            self._know_gpu(memory)
            est = memory.estimate(cfg, self._gpu)
            text = self._meter(est.total_gb, est.per_gpu)
        except Exception as exc:  # noqa: BLE001 - the meter must never take the wizard down
            text = f"[dim]memory estimate unavailable: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}[/]"
        self.app.call_from_thread(self.update, text)

    @work(thread=True, exclusive=True, group="memory")
    def fit_for(self, cfg: RunConfig) -> None:
        """Post `Fitted` with what makes `cfg` fit this GPU, or notify why nothing can be proposed."""
        from smoltrain import memory

        try:
            self._know_gpu(memory)
            if not self._gpu:
                raise RuntimeError("no NVIDIA GPU found here: set SMOLTRAIN_GPU_MEM_GB (e.g. 12) to fit for another card")
            proposal = memory.fit(cfg, self._gpu)
        except Exception as exc:  # noqa: BLE001 - a FitError (nothing fits) or a model config not found: say it, carry on
            self.app.call_from_thread(self.notify, str(exc).splitlines()[0], title="fit", severity="warning")
            return
        self.post_message(self.Fitted(dict(proposal.overrides), proposal.explain()))
        self.app.call_from_thread(self.update, self._meter(proposal.estimate.total_gb, proposal.estimate.per_gpu))

    def _know_gpu(self, memory: ModuleType) -> None:
        if not self._gpu_known:
            env = os.environ.get("SMOLTRAIN_GPU_MEM_GB")
            self._gpu, self._gpu_known = (float(env) if env else memory.detect_gpu_memory_gb()), True

    def _meter(self, total_gb: float, per_gpu: str = "") -> str:
        """The bar; `per_gpu` ("per GPU, 2 GPUs, ddp") says what the figure is of a multi-GPU run."""
        each = f" [dim]({per_gpu})[/]" if per_gpu else ""
        if not self._gpu:
            return f"GPU memory needed: ~{total_gb:.1f} GiB{each} [dim](no NVIDIA GPU found here)[/]"
        share = total_gb / self._gpu
        color = "green" if share < 0.8 else "yellow" if share <= 1.0 else "red"
        filled = round(min(1.0, share) * _BAR)
        verdict = "fits" if share <= 1.0 else "does NOT fit: ctrl+f fits it"
        card = f"{self._gpu:.1f}" if self._gpu < 10 else f"{self._gpu:.0f}"  # a 0.5 GiB card is not "0"
        return f"GPU memory [{color}]{'█' * filled}{'░' * (_BAR - filled)}[/] {total_gb:.1f} of {card} GiB: {verdict}{each}"
