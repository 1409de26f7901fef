"""Where this process stands among the ones a launcher (accelerate launch, torchrun) started: the
environment they set (WORLD_SIZE, RANK, LOCAL_RANK), read in one place. Without a launcher: one
process, rank 0. Stdlib only, so the runner and the CLI can ask without the ML stack
(engine/distributed.py builds the collective steps on it)."""

from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))
