"""What a running worker is asked from outside, and how it is found: stop (a signal sets
`StopFlag`), "save a checkpoint now" (a front end creates `control/save_now` in the run folder),
and `running_worker`, the pid of the worker training a run now (from `worker.pid`), for whoever
wants to stop it or to know whether it trains.

Imports nothing heavy: the worker needs `StopFlag` before the ML stack loads, because Unsloth must
be imported before transformers and PEFT to patch them. Never imports torch or textual.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CONTROL_DIR = "control"  # runs/<name>/control/
SAVE_NOW = "save_now"  # runs/<name>/control/save_now: "save a checkpoint now", from the app
WORKER_PID = "worker.pid"  # written by the runner, so a later session (another terminal, the app reopened) finds the run


@dataclass
class StopFlag:
    """Set from a signal handler; read by the callback at step boundaries."""

    requested: bool = False


def running_worker(run_dir: Path) -> int | None:
    """The pid of the worker training this run now, or None. A pid file outlives its worker and
    pids are reused, so the process must still be alive and be this run's worker."""
    try:
        pid = int((run_dir / WORKER_PID).read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: check what the process is; elsewhere trust the live pid
        args = [a.decode(errors="replace") for a in cmdline.read_bytes().split(b"\0") if a]
        this_run = run_dir.resolve()
        if "smoltrain.engine.worker" not in args or not any(Path(a).resolve() == this_run for a in args[1:]):
            return None
    return pid
