"""This worker's place among the processes accelerate's launcher started, and the few collective steps
smoltrain itself needs around TRL's trainer.

`accelerate launch` (or torchrun) starts one worker per GPU with RANK, LOCAL_RANK and WORLD_SIZE set;
`smoltrain run --gpus N` does that for the user (smoltrain/runner.py). The training itself is
distributed by the Trainer (DDP, FSDP or DeepSpeed through accelerate); what is left to smoltrain is
the run folder, which the ranks share:
- only the main process (rank 0) holds the run's lock, writes worker.pid and the events, the final
  adapter's tokenizer, merged models, manifests and stage-done marks; every rank saves its own part
  of a checkpoint (transformers decides which), and the manifest is written once all have (`wait`);
- what rank 0 alone does (a merge, the before/after samples, an evaluation) is followed by a barrier,
  so the others wait there instead of racing ahead (`main_only`); what every rank reads that rank 0
  may first write or repair (the datasets cache, a resume point) is done main first (`main_first`);
- a stop request reaches rank 0 (worker.pid is its pid) or every rank (the launcher forwards signals):
  `agree` ORs the ranks' flags at each step's end, so all of them stop and save at the same step.

One process (no launcher) is the common case, and then every function here is free: no process group
is made and nothing waits. The process group is accelerate's own (PartialState), made here first with
a long timeout, because rank 0's merges and evaluations between stages can take longer than the
default 30 minutes while the other ranks wait at a barrier.

`resolve_strategy` turns [distributed] strategy into what this launch does (auto: ddp when the memory model
says one GPU holds the run, fsdp otherwise; a user's own accelerate config wins), `strategy_arguments` into the
Trainer's arguments; `check_processes` refuses to resume a checkpoint on another number of processes.

Runs in the worker. Imports torch and accelerate only when there is more than one process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from smoltrain.config.schema import RunConfig
from smoltrain.errors import ConfigError
from smoltrain.ranks import local_rank, rank, world_size

T = TypeVar("T")
BARRIER_TIMEOUT = timedelta(hours=6)  # rank 0 alone merges an 8B model or runs an evaluation meanwhile


def is_main() -> bool:
    return rank() == 0


def is_distributed() -> bool:
    return world_size() > 1


def _state() -> Any:
    from accelerate import PartialState

    return PartialState(timeout=BARRIER_TIMEOUT)


def start() -> None:
    """Join the process group (before the Trainer does, so that our timeout is the one it keeps)."""
    if is_distributed():
        _state()


def wait() -> None:
    """Every rank reaches this point before any goes on."""
    if is_distributed():
        _state().wait_for_everyone()


@contextlib.contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (writing caches, repairing a checkpoint folder), then the others."""
    if not is_distributed():
        yield
        return
    with _state().main_process_first():
        yield


def main_only(work: Callable[[], T]) -> T | None:
    """`work` on rank 0 only; every rank waits until it is done. None on the other ranks."""
    result = work() if is_main() else None
    wait()
    return result


def agree(*flags: bool) -> tuple[bool, ...]:
    """Each flag true on every rank if it is true on any (one all-reduce of a few numbers per call)."""
    if not is_distributed():
        return flags
    import torch
    import torch.distributed as dist

    values = torch.tensor([float(f) for f in flags], device=_state().device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return tuple(bool(v) for v in values.tolist())


def cuda_device_map() -> dict[str, int]:
    """Where this rank's model goes on CUDA: its own GPU (accelerate's LOCAL_RANK), the whole model on it."""
    return {"": local_rank()}


# FSDP for QLoRA as bitsandbytes' and PEFT's guides ship it (and Axolotl, LLaMA-Factory): the 4-bit weights
# are stored in the compute dtype (model.py sets bnb_4bit_quant_storage) so FSDP can shard them, whole
# decoder layers are the wrapped units, and original parameters are off (LoRA's frozen and trainable
# tensors share a unit).
FSDP_CONFIG: dict[str, Any] = {
    "use_orig_params": False,
    "cpu_ram_efficient_loading": True,
    "sync_module_states": True,
    "state_dict_type": "SHARDED_STATE_DICT",
    "backward_prefetch": "backward_pre",
    "forward_prefetch": False,
}


def deepspeed_config(stage: int) -> dict[str, Any]:
    """A ZeRO config whose sizes the Trainer fills in ("auto") from the [train] section."""
    zero: dict[str, Any] = {"stage": stage, "overlap_comm": True, "contiguous_gradients": True}
    if stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True  # the final adapter is saved whole
    return {
        "zero_optimization": zero,
        "bf16": {"enabled": "auto"},
        "fp16": {"enabled": "auto"},
        "train_micro_batch_size_per_gpu": "auto",
        "gradient_accumulation_steps": "auto",
        "train_batch_size": "auto",
        "gradient_clipping": "auto",
    }


def launcher_chose_strategy() -> str | None:
    """The strategy a user's own `accelerate launch` config set (accelerate passes it on in the environment)."""
    if os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true"):
        return "fsdp"
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() in ("1", "true"):
        return "deepspeed"
    return None


def strategy_arguments(strategy: str) -> dict[str, Any]:
    """TrainingArguments for the resolved strategy; the Trainer and accelerate do the distributing."""
    if not is_distributed() or launcher_chose_strategy() is not None:
        return {}
    if strategy == "fsdp":
        return {"fsdp": "full_shard auto_wrap", "fsdp_config": dict(FSDP_CONFIG)}
    if strategy.startswith("deepspeed-zero"):
        return {"deepspeed": deepspeed_config(int(strategy[-1]))}
    # DDP: LoRA with checkpointing leaves no parameter unused, and the search for unused ones costs a pass.
    return {"ddp_find_unused_parameters": False}


def resolve_strategy(cfg: RunConfig) -> str:
    """How this run's processes share the work: "single" (one process), or [distributed] strategy with
    auto resolved by the memory model (ddp when one GPU holds the run, fsdp otherwise), or what the user's own
    accelerate config chose. ConfigError when DeepSpeed is asked for and missing."""
    if not is_distributed():
        return "single"
    chosen = launcher_chose_strategy()
    if chosen is not None:
        return chosen
    strategy = cfg.distributed.strategy
    if strategy.startswith("deepspeed") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"distributed.strategy = {strategy!r} needs DeepSpeed, which is not installed here",
                          hint="pip install deepspeed, or set distributed.strategy = 'fsdp' (or 'ddp')")  # fmt: skip
    if strategy != "auto":
        return strategy
    import torch

    if not torch.cuda.is_available():
        return "ddp"
    from smoltrain.memory import resolve_strategy as by_memory

    gpu_gb = torch.cuda.get_device_properties(local_rank()).total_memory / 2**30
    # As many GPUs as were launched (a user's own `accelerate launch` of the worker may not have said).
    launched = cfg.model_copy(update={"distributed": cfg.distributed.model_copy(update={"gpus": world_size()})})
    return by_memory(launched, gpu_gb)


def batch_facts(cfg: RunConfig, strategy: str) -> dict[str, str]:
    """The effective batch, and with more than one process how they share the work, for run_started."""
    train, processes = cfg.train, world_size()
    shape = f"{train.micro_batch_size} x {train.grad_accum} accumulation"
    if processes == 1:
        return {"batch": f"{shape} = {train.micro_batch_size * train.grad_accum}"}
    return {"batch": f"{shape} x {processes} processes = {effective_batch(cfg)}",
            "distributed": f"{strategy} on {processes} processes"}  # fmt: skip


def effective_batch(cfg: RunConfig) -> int:
    return cfg.train.micro_batch_size * cfg.train.grad_accum * world_size()


def check_processes(checkpoint: Path) -> None:
    """A checkpoint continues on as many processes as saved it: each rank's RNG state and share of the data
    order are in it (rng_state_<rank>.pth; one process saves rng_state.pth)."""
    saved = len(list(checkpoint.glob("rng_state_*.pth"))) or 1
    now = world_size()
    if saved != now:
        raise ConfigError(
            f"{checkpoint}: this checkpoint was saved by {saved} process{'es' if saved > 1 else ''}, and this resume "
            f"runs {now}",
            hint=f"resume with --gpus {saved} (distributed.gpus = {saved} in the run's config.toml), or start a new "
            "run from it with model.name_or_path set to the run folder",
        )
