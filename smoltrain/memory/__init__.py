"""Memory model and fit-to-GPU: how much GPU memory a run needs, and the batch shape that fits.

    estimate(cfg, gpu_mem_gb=None) -> MemoryEstimate   rows (component, GiB), total_gb, verdict, render_table()
    fit(cfg, gpu_mem_gb, margin=0.1) -> FitProposal    overrides (dotted keys), estimate after, explain()
    resolve_strategy(cfg, gpu_mem_gb) -> str           "single", "ddp", "fsdp", "deepspeed-zero2|3" (auto resolved)

With distributed.gpus > 1 every figure is per GPU, under the run's strategy.

Both read the model's config.json (a local folder, the Hugging Face cache, or the hub; or an
explicit `model_config` file), never the weights. Modules: shapes (config.json -> parameter
counts), activations (what autograd keeps), estimate (the components and the verdict), fit (the
search), sharding (what each GPU holds with more than one). Formulas and sources: docs/memory.md.

Imports no torch, anywhere in this package: the CLI and the TUI use it without the ML stack.
"""

from __future__ import annotations

from smoltrain.memory.estimate import MemoryEstimate, estimate, resolve_strategy
from smoltrain.memory.fit import FitProposal, fit
from smoltrain.memory.shapes import ModelShape, detect_gpu_memory_gb, read_model_config

__all__ = ["FitProposal", "MemoryEstimate", "ModelShape", "detect_gpu_memory_gb", "estimate", "fit", "read_model_config",
           "resolve_strategy"]
