"""One benchmark arm in this process: read a spec, train, write one result JSON. Started by bench/launch.py.

    python -m bench.arm bench/results/x/sft-A/spec.json          # one arm, a fresh interpreter
    python -m bench.arm --fork SPEC [SPEC ...]                   # CPU smoke: import once, fork per arm

The result (spec.json's folder / result.json) holds: status (ok, oom, error), the arm and its
workload, what was active (the arm's own account, `active`, and what the live trainer showed,
`observed`: bench/observe.py), throughput and MFU (bench/meter.py), peak memory, the device
and library versions. A CUDA out-of-memory error is a result ("oom"), not a crash: the card
emulation (bench/fit_cards.py) bisects on it.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.launch import ArmSpec


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--fork":
        return fork_each([Path(p) for p in argv[1:]])
    for path in argv:
        run_one(ArmSpec.load(Path(path)))
    return 0


def fork_each(paths: list[Path]) -> int:
    import peft  # noqa: F401
    import trl  # noqa: F401

    import bench.arms  # noqa: F401 - the heavy imports happen here, once, before forking
    import smoltrain.engine.run  # noqa: F401

    for path in paths:
        spec = ArmSpec.load(path)
        pid = os.fork()
        if pid == 0:  # the child: one arm, then leave without running the parent's cleanup
            code = 0
            try:
                run_one(spec)
            except BaseException:  # noqa: BLE001 - whatever happens, the parent must go on
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        os.waitpid(pid, 0)
    return 0


def run_one(spec: ArmSpec) -> None:
    started = time.time()
    result: dict[str, Any] = {"arm": spec.arm, "technique": spec.work.technique, "shape": spec.shape,
                              "work": asdict(spec.work), "mem_cap_gb": spec.mem_cap_gb}  # fmt: skip
    try:
        result.update(_measure(spec))
        result["status"] = "ok"
    except Exception as exc:  # noqa: BLE001 - every failure becomes a result the parent can report
        result.update(_failure(exc))
        traceback.print_exc()
    result["wall_seconds"] = time.time() - started
    result["environment"] = environment()
    spec.result_path.write_text(json.dumps(result, indent=2, default=str))
    print(f"bench: {spec.arm} {spec.work.technique}: {result['status']}", flush=True)


def _measure(spec: ArmSpec) -> dict[str, Any]:
    import torch

    from bench.arms import run_smoltrain, run_trl_docs
    from bench.meter import Meter, figures, memory
    from bench.shapes import matmul_params

    if spec.mem_cap_gb is not None:
        if not torch.cuda.is_available():
            raise RuntimeError("mem_cap_gb needs CUDA")
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, spec.mem_cap_gb * 2**30 / total))
    torch.manual_seed(spec.seed)
    meter = Meter()
    if spec.arm in ("A", "A0"):
        active = run_trl_docs(spec, meter)
    elif spec.arm in ("B", "C"):
        active = run_smoltrain(spec, meter, backend="hf" if spec.arm == "B" else "unsloth")
    else:
        raise ValueError(f"unknown arm {spec.arm!r}")
    n_params = matmul_params(spec.shape, reward=spec.work.technique == "reward")
    out = {"active": active, "observed": meter.observed, "n_params": n_params, **memory(meter)}
    out.update(figures(meter, spec.work.technique, n_params, completions_per_step=spec.work.batch))
    return out


def _failure(exc: BaseException) -> dict[str, Any]:
    import torch

    # smoltrain reports a CUDA OOM as its own FitError ("out of GPU memory ..."): that is an OOM too.
    text = str(exc).lower()
    oom = isinstance(exc, torch.OutOfMemoryError) or "out of memory" in text or "out of gpu memory" in text
    reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
    return {"status": "oom" if oom else "error", "reason": reason}


def environment() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    versions: dict[str, str | None] = {}
    for name in ("torch", "transformers", "trl", "peft", "bitsandbytes", "accelerate", "liger-kernel", "unsloth"):
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            versions[name] = None
    cuda = torch.cuda.is_available()
    return {
        "device": torch.cuda.get_device_name() if cuda else f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)",
        "gpu_memory_gb": torch.cuda.get_device_properties(0).total_memory / 2**30 if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        "versions": versions,
    }


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
