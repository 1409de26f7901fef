"""What a trainer really runs with, read off the live objects rather than off anyone's description of them.

The run_started event says what smoltrain *meant* to turn on ("liger": "on (RMSNorm, RoPE, SwiGLU)");
this module checks the objects themselves, once, after the first optimizer step of an arm:
- 4-bit: how many bitsandbytes Linear4bit layers the model holds, their quant type and compute dtype;
- Liger: which modules run Liger's forward (its own classes, or, as Liger patches a loaded model,
  its forward bound onto the instance), and whether the model's RoPE function is Liger's;
- checkpointing: how many decoder layers are checkpointed, and whether the checkpoint function
  is the non-reentrant one (`use_reentrant=False` in the partial transformers stores on each layer);
- bf16: the autocast state seen by the model's forwards during the training steps;
- the optimizer: its class, and its state tensors' dtypes and paging (8-bit AdamW keeps uint8
  states; a paged one allocates them as paged tensors that survive memory spikes by moving to the CPU).

bench/meter.py calls `record_forward_autocast` and `observe`; the arm writes the dict under
`observed` in its result, next to `active`. Read by bench/gpu_verdicts.py. Imports torch (the arm process only).
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

import torch


def autocast_state() -> str:
    """The autocast state of the current forward: "bfloat16 autocast (cuda)", or "off"."""
    for device in ("cuda", "cpu"):
        if torch.is_autocast_enabled(device):
            dtype = str(torch.get_autocast_dtype(device)).removeprefix("torch.")
            return f"{dtype} autocast ({device})"
    return "off"


def record_forward_autocast(model: Any, seen: Counter[str]) -> None:
    """Count the autocast state of every forward of `model` while it trains (generation included)."""

    def hook(module: Any, args: Any) -> None:
        if module.training:
            seen[autocast_state()] += 1

    model.register_forward_pre_hook(hook)


def observe(model: Any, optimizer: Any, autocast_seen: Counter[str]) -> dict[str, Any]:
    """The facts above, as plain JSON values."""
    return {
        "4bit": _four_bit(model),
        "liger": _liger(model),
        "checkpointing": _checkpointing(model),
        "autocast": dict(autocast_seen),
        "optimizer": _optimizer(optimizer),
    }


def _four_bit(model: Any) -> dict[str, Any]:
    layers = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    if not layers:
        return {"layers": 0}
    weight = getattr(layers[0], "weight", None)
    state = getattr(weight, "quant_state", None)
    return {
        "layers": len(layers),
        "quant_type": getattr(weight, "quant_type", None) or getattr(state, "quant_type", None),
        "compute_dtype": str(getattr(layers[0], "compute_dtype", None)).removeprefix("torch."),
        "device": str(weight.device) if weight is not None else None,
    }


def _liger(model: Any) -> dict[str, Any]:
    classes = Counter(m._get_name() for m in model.modules() if _is_liger(m))
    rope = None
    for module in model.modules():  # the modeling module of the base architecture holds the RoPE function
        source = sys.modules.get(type(module).__module__)
        if source is not None and hasattr(source, "apply_rotary_pos_emb"):
            rope = getattr(source.apply_rotary_pos_emb, "__module__", None)
            break
    return {"modules": dict(classes), "rope_from": rope}


def _is_liger(module: Any) -> bool:
    """Liger's class, or (how Liger patches a loaded model) Liger's forward bound onto this instance."""
    forward = module.__dict__.get("forward")
    function = getattr(forward, "__func__", forward)
    return type(module).__module__.startswith("liger_kernel") or str(getattr(function, "__module__", "")).startswith("liger_kernel")


def _checkpointing(model: Any) -> dict[str, Any]:
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:  # older transformers: every module with the flag counts
        GradientCheckpointingLayer = torch.nn.Module  # noqa: N806
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer) and getattr(m, "gradient_checkpointing", False)]
    if not layers:
        return {"layers": 0}
    func = getattr(layers[0], "_gradient_checkpointing_func", None)
    keywords = dict(getattr(func, "keywords", {}) or {})
    return {
        "layers": len(layers),
        "function": getattr(getattr(func, "func", func), "__qualname__", str(func)),
        # torch's own default is reentrant when the keyword is missing
        "use_reentrant": keywords.get("use_reentrant", True),
    }


def _optimizer(optimizer: Any) -> dict[str, Any]:
    if optimizer is None:
        return {"class": None}
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the real one
    states = [s for s in getattr(inner, "state", {}).values() if isinstance(s, dict)]
    first_moments = [s.get("state1", s.get("exp_avg")) for s in states]
    tensors = [t for t in first_moments if isinstance(t, torch.Tensor)]
    return {
        "class": f"{type(inner).__module__}.{type(inner).__name__}",
        "is_paged": bool(getattr(inner, "is_paged", False)),
        "optim_bits": getattr(getattr(inner, "args", None), "optim_bits", None),
        "state_dtypes": dict(Counter(str(t.dtype).removeprefix("torch.") for t in tensors)),
        "paged_states": sum(bool(getattr(t, "is_paged", False)) for t in tensors),
        "states": len(tensors),
    }
