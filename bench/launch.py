"""Start arms in fresh processes and collect their results; shared by bench/run.py and bench/fit_cards.py.

An arm is described by an `ArmSpec` (JSON file) and runs in `python -m bench.arm SPEC`, which
writes one result JSON next to the spec. A fresh process per arm matters: Unsloth and Liger patch
transformers globally, and CUDA memory (and its peak statistics) only fully return at exit.

Two ways to start them:
- spawn (the default, and the only honest one on a GPU): one new interpreter per arm;
- fork: one interpreter imports torch/transformers/TRL once, then forks a child per arm. Each
  arm still gets its own process, memory and peak statistics, without paying ~10-20 s of imports
  each. Used by the CPU smoke mode, so the test stays inside its time budget; never with CUDA
  (a CUDA context does not survive fork) nor for Unsloth (it must patch before transformers loads).

Imports no torch: the parent stays light.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.data import Workload
from bench.shapes import PROJECT_ROOT

ARMS = ("A", "A0", "B", "C")
ARM_TITLES = {
    "A": "TRL docs QLoRA script (TRL defaults: checkpointing on)",
    "A0": "TRL docs QLoRA script, checkpointing off",
    "B": "smoltrain default path (backend hf)",
    "C": "smoltrain with Unsloth",
}


@dataclass
class ArmSpec:
    arm: str
    shape: str
    model_dir: str
    data_path: str
    work: Workload
    scratch_dir: str  # trainer output (nothing is saved there during the timed steps)
    mem_cap_gb: float | None = None  # emulate a smaller card: torch.cuda.set_per_process_memory_fraction
    seed: int = 42
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def result_path(self) -> Path:
        return Path(self.scratch_dir) / "result.json"

    def save(self) -> Path:
        Path(self.scratch_dir).mkdir(parents=True, exist_ok=True)
        path = Path(self.scratch_dir) / "spec.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @staticmethod
    def load(path: Path) -> ArmSpec:
        raw = json.loads(Path(path).read_text())
        raw["work"] = Workload(**raw["work"])
        return ArmSpec(**raw)


def run_arms(specs: list[ArmSpec], mode: str = "spawn", timeout_s: float = 3600) -> list[dict[str, Any]]:
    """Run each spec in its own process (in order, one at a time) and return their results in order."""
    paths = [spec.save() for spec in specs]
    for spec in specs:
        spec.result_path.unlink(missing_ok=True)
    if mode == "fork":
        _start([str(p) for p in paths], "--fork", Path(specs[0].scratch_dir).parent / "fork.log", timeout_s * len(specs))
    else:
        for spec, path in zip(specs, paths):
            _start([str(path)], None, Path(spec.scratch_dir) / "arm.log", timeout_s)
    return [read_result(spec) for spec in specs]


def _start(args: list[str], flag: str | None, log: Path, timeout_s: float) -> None:
    command = [sys.executable, "-m", "bench.arm", *([flag] if flag else []), *args]
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with log.open("w") as handle:
        try:
            subprocess.run(command, cwd=PROJECT_ROOT, stdout=handle, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            handle.write(f"\nbench: killed after {time.time() - started:.0f} s (timeout {timeout_s:.0f} s)\n")


def read_result(spec: ArmSpec) -> dict[str, Any]:
    if spec.result_path.exists():
        return json.loads(spec.result_path.read_text())
    log = Path(spec.scratch_dir) / "arm.log"
    if not log.exists():
        log = Path(spec.scratch_dir).parent / "fork.log"
    tail = log.read_text()[-1500:] if log.exists() else "(no log)"
    return {"arm": spec.arm, "technique": spec.work.technique, "status": "error",
            "reason": f"the arm process wrote no result; its log ends:\n{tail}"}  # fmt: skip


def skip_reason(arm: str, technique: str, has_cuda: bool) -> str | None:
    """Why an arm cannot run here, decided without starting it; None when it can."""
    if arm != "C":
        return None
    if not has_cuda:
        return "unsloth needs CUDA"
    import importlib.util

    if importlib.util.find_spec("unsloth") is None:
        return "unsloth not installed"
    if technique == "reward":
        return "smoltrain trains reward models without Unsloth (same as B)"
    return None


def cuda_available() -> bool:
    import torch  # only here: asking costs the parent one import, never a CUDA context

    return bool(torch.cuda.is_available())
