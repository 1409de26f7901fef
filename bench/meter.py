"""What one arm measures, the same way for every arm: step times, tokens, generation time, memory, MFU.

`instrument(trainer, meter)` is applied to whatever trainer an arm built (TRL's, smoltrain's or
Unsloth's) and changes nothing it computes:
- a callback times each optimizer step (CUDA synchronised at both ends);
- the data collator is wrapped to count each batch's non-padding tokens (its attention mask, or
  the tokens that are not the pad id);
- for GRPO, `model.generate` is wrapped to time generation, and TRL's own logged
  `num_tokens` (prompt + completion tokens, padding excluded) and `completions/mean_length`
  give the tokens trained on and generated in each step.
The first step is a warm-up (CUDA kernels, allocator, autotuning) and is not counted; model
loading is outside the timed steps altogether. After the first step the meter also reads what the
trainer really runs with (bench/observe.py: 4-bit layers, Liger modules, checkpointed layers,
autocast, the optimizer's state) into `observed`. Peak memory is the whole process's, and also that
of the training steps alone (CUDA's peak statistics are reset when training begins).

MFU = achieved model FLOPs / the GPU's dense bf16 peak. With LoRA the frozen base needs no weight
gradients: forward 2N + backward through the activations 2N = 4N FLOPs per trained token;
generation is 2N per generated token. N counts the weights of every matmul (shapes.matmul_params).
Attention's own FLOPs (quadratic in length) are left out, as is DPO's reference forward pass
and recomputation under checkpointing: MFU is a lower bound at long sequences.

Imports torch and transformers (the arm process only).
"""

from __future__ import annotations

import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import TrainerCallback

from bench.observe import observe, record_forward_autocast

# Dense bf16 tensor throughput with fp32 accumulation (what training uses), per device name
# substring; more specific names first. GeForce cards run fp32-accumulate at half their fp16 rate.
PEAK_BF16_FLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
    ("A6000", 154.8e12),
    ("RTX 5090", 209.5e12),
    ("RTX 4090", 165.2e12),
    ("RTX 4080", 97.5e12),
    ("RTX 3090", 71e12),
    ("RTX 3080", 59.5e12),
    ("RTX 3060", 25.5e12),
)


def peak_flops(device_name: str) -> float | None:
    """The GPU's dense bf16 peak, from the table above or else TRL's own table; None if unknown (CPU)."""
    for key, flops in PEAK_BF16_FLOPS:
        if key.lower() in device_name.lower():
            return flops
    try:
        from trl.trainer.utils import get_peak_flops

        return get_peak_flops(device_name, "bfloat16")
    except ImportError:
        return None


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


@dataclass
class Meter(TrainerCallback):
    """Per-step records, filled in by the callback hooks and the wrappers `instrument` installs."""

    step_seconds: list[float] = field(default_factory=list)
    step_gen_seconds: list[float] = field(default_factory=list)
    batch_tokens: list[int] = field(default_factory=list)  # per collated batch, in order
    logged: list[dict[str, float]] = field(default_factory=list)  # per step: TRL's logged values
    observed: dict[str, Any] = field(default_factory=dict)  # bench/observe.py, after the first step
    autocast_seen: Counter[str] = field(default_factory=Counter)  # autocast state -> training forwards
    before_train: dict[str, float] = field(default_factory=dict)  # CUDA peaks (GiB) when training began
    _start: float = 0.0
    _gen_seconds: float = 0.0

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if torch.cuda.is_available():  # keep loading's and the preflight's peaks apart from training's
            self.before_train = {"allocated": torch.cuda.max_memory_allocated() / 2**30,
                                 "reserved": torch.cuda.max_memory_reserved() / 2**30}  # fmt: skip
            torch.cuda.reset_peak_memory_stats()

    def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        sync()
        self._gen_seconds = 0.0
        self._start = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        sync()
        self.step_seconds.append(time.perf_counter() - self._start)
        self.step_gen_seconds.append(self._gen_seconds)
        if not self.observed:  # after the first optimizer step: its states exist now
            self.observed = observe(kw.get("model"), kw.get("optimizer"), self.autocast_seen)
        self.observed["autocast"] = dict(self.autocast_seen)  # every step's forwards, generation's too

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
        values = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, (int, float))}
        if "num_tokens" in values or "completions/mean_length" in values:
            self.logged.append(values)

    def add_generation(self, seconds: float) -> None:
        self._gen_seconds += seconds


def instrument(trainer: Any, meter: Meter, pad_token_id: int | None) -> None:
    """Attach the meter to a built trainer: the callback, token counting, generation timing."""
    collate = trainer.data_collator

    def counting_collator(features: Any) -> Any:
        batch = collate(features)
        meter.batch_tokens.append(count_tokens(batch, pad_token_id))
        return batch

    trainer.data_collator = counting_collator
    model = trainer.model
    record_forward_autocast(model, meter.autocast_seen)
    if hasattr(model, "generate"):
        generate = model.generate

        def timed_generate(*args: Any, **kwargs: Any) -> Any:
            sync()
            start = time.perf_counter()
            out = generate(*args, **kwargs)
            sync()
            meter.add_generation(time.perf_counter() - start)
            return out

        model.generate = timed_generate  # an instance attribute: shadows the method for this model only
    trainer.add_callback(meter)


def count_tokens(batch: Any, pad_token_id: int | None) -> int:
    if not isinstance(batch, dict):
        return 0  # GRPO collates raw prompts: its tokens come from its logs
    if "attention_mask" in batch and isinstance(batch["attention_mask"], torch.Tensor):
        return int(batch["attention_mask"].sum())
    ids = batch.get("input_ids")
    if isinstance(ids, torch.Tensor):
        return int((ids != pad_token_id).sum()) if pad_token_id is not None else ids.numel()
    return 0


def memory(meter: Meter | None = None) -> dict[str, float | None]:
    """Peak memory of this process in GiB: CUDA allocated and reserved on a GPU; peak RSS always.

    With a meter, also the peak of the training steps alone (`train_peak_*`): the meter resets
    CUDA's peak statistics when training begins, so what came before (loading, and smoltrain's
    preflight pass) is kept apart; `peak_*` stay the whole process's."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30
    if not torch.cuda.is_available():
        return {"peak_allocated_gb": None, "peak_reserved_gb": None, "peak_rss_gb": rss}
    allocated, reserved = torch.cuda.max_memory_allocated() / 2**30, torch.cuda.max_memory_reserved() / 2**30
    before = meter.before_train if meter is not None else {}
    out: dict[str, float | None] = {
        "peak_allocated_gb": max(allocated, before.get("allocated", 0.0)),
        "peak_reserved_gb": max(reserved, before.get("reserved", 0.0)),
        "peak_rss_gb": rss,
    }
    if before:
        out.update(train_peak_allocated_gb=allocated, train_peak_reserved_gb=reserved,
                   before_train_reserved_gb=before["reserved"])  # fmt: skip
    return out


def figures(meter: Meter, technique: str, n_params: int, completions_per_step: int) -> dict[str, Any]:
    """Throughput and MFU over the timed steps (all but the first)."""
    timed = range(1, len(meter.step_seconds))
    if not timed:
        return {"error": "no timed steps: run at least 2 steps"}
    seconds = sum(meter.step_seconds[i] for i in timed)
    gen_seconds = sum(meter.step_gen_seconds[i] for i in timed)
    out: dict[str, Any] = {"timed_steps": len(timed), "step_seconds": seconds / len(timed)}
    if technique == "grpo":
        cumulative = [row.get("num_tokens", 0.0) for row in meter.logged]
        per_step = [b - a for a, b in zip([0.0, *cumulative], cumulative)]
        trained = sum(per_step[i] for i in timed if i < len(per_step))
        generated = sum(meter.logged[i].get("completions/mean_length", 0.0) * completions_per_step
                        for i in timed if i < len(meter.logged))  # fmt: skip
        train_seconds = seconds - gen_seconds
        out.update(
            tokens=trained, tokens_per_s=trained / train_seconds if train_seconds > 0 else None,
            generation_seconds=gen_seconds / len(timed), training_seconds=train_seconds / len(timed),
            generated_tokens=generated, gen_tokens_per_s=generated / gen_seconds if gen_seconds > 0 else None,
        )  # fmt: skip
    else:
        tokens = sum(meter.batch_tokens[i] for i in timed if i < len(meter.batch_tokens))
        out.update(tokens=tokens, tokens_per_s=tokens / seconds)
    peak = peak_flops(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
    out["peak_flops"] = peak
    out["mfu"] = 4 * n_params * out["tokens_per_s"] / peak if peak and out.get("tokens_per_s") else None
    if technique == "grpo":
        gen_rate = out.get("gen_tokens_per_s")
        out["mfu_generation"] = 2 * n_params * gen_rate / peak if peak and gen_rate else None
    return out
