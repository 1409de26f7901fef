"""Which checkpoints are complete, which stages are done, and what a resumed run picks up from.

transformers 5.23's `Trainer._save_checkpoint` writes straight into `checkpoint-N/` (adapter,
optimizer, scheduler, RNG, trainer_state.json) with no temporary folder, so a kill -9, a second
Ctrl-C or a full disk can leave a half-written checkpoint that looks like any other. Rather than
reimplementing the save, smoltrain marks a checkpoint complete once transformers has finished
with it: `EventCallback.on_save` calls `mark_complete`, which writes a manifest (every file and
its size) to a temporary name and renames it into place. A checkpoint without a valid manifest,
or whose files no longer match it (truncated later), is incomplete: `last_complete` skips it and
`drop_incomplete` removes it before training resumes, so transformers' rotation never keeps a
broken checkpoint in place of a good one.

A stage is done when `stage-done.json` sits in its folder (written after its final adapter and,
in a pipeline, its merged model): a resumed pipeline skips done stages.

Imports the standard library only (no torch, no transformers), so the runner and the CLI can
inspect a run folder cheaply. Never imports textual.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "smoltrain-complete.json"
STAGE_DONE = "stage-done.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def _write_json_atomically(path: Path, data: object) -> None:
    """Write to a temporary name, fsync, then rename: readers see the old file or the whole new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def mark_complete(checkpoint: Path) -> None:
    """Record every file of a just-saved checkpoint with its size; the manifest itself goes last."""
    files = {
        str(p.relative_to(checkpoint)): p.stat().st_size
        for p in sorted(checkpoint.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST, MANIFEST + ".tmp")
    }
    _write_json_atomically(checkpoint / MANIFEST, {"files": files})


def is_complete(checkpoint: Path) -> bool:
    manifest = _read_json(checkpoint / MANIFEST)
    files = manifest.get("files") if manifest else None
    if not isinstance(files, dict) or "trainer_state.json" not in files:
        return False
    for name, size in files.items():
        path = checkpoint / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


def checkpoints_of(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint-N folder, oldest step first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return sorted(found)


def last_complete(folder: Path) -> Path | None:
    """The newest complete checkpoint in `folder`, or None."""
    for _, path in reversed(checkpoints_of(folder)):
        if is_complete(path):
            return path
    return None


def drop_incomplete(folder: Path) -> list[Path]:
    """Remove the checkpoints that are not complete; returns what was removed.

    They cannot be resumed from, and left in place they would count against save_total_limit and
    push a complete one out at the next save."""
    dropped = [path for _, path in checkpoints_of(folder) if not is_complete(path)]
    for path in dropped:
        shutil.rmtree(path, ignore_errors=True)
    return dropped


def mark_stage_done(stage_dir: Path, step: int) -> None:
    _write_json_atomically(stage_dir / STAGE_DONE, {"step": step})


def stage_done_step(stage_dir: Path) -> int | None:
    """The final step of a finished stage, or None if the stage is not done."""
    data = _read_json(stage_dir / STAGE_DONE)
    step = data.get("step") if data else None
    return step if isinstance(step, int) else None


@dataclass
class ResumePoint:
    """Where a stage continues: its last complete checkpoint (None: from step 0) and what was skipped."""

    checkpoint: Path | None
    dropped: list[Path]

    @property
    def step(self) -> int:
        return int(_CHECKPOINT.match(self.checkpoint.name).group(1)) if self.checkpoint else 0  # type: ignore[union-attr]


def resume_point(checkpoints_dir: Path) -> ResumePoint:
    dropped = drop_incomplete(checkpoints_dir)
    return ResumePoint(checkpoint=last_complete(checkpoints_dir), dropped=dropped)
