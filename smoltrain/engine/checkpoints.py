"""Which checkpoints are complete, which stages are done, and what a resumed run picks up from.

transformers 5.23's `Trainer._save_checkpoint` writes straight into `checkpoint-N/` (adapter,
optimizer, scheduler, RNG, trainer_state.json) with no temporary folder, so a kill -9, a second
Ctrl-C or a full disk can leave a half-written checkpoint that looks like any other. Rather than
reimplementing the save, smoltrain marks a checkpoint complete once transformers has finished
with it: `EventCallback.on_save` calls `mark_complete`, which writes a manifest (every file, its
size and its SHA-256) to a temporary name and renames it into place. A checkpoint without a valid
manifest, or whose files no longer match it (truncated, or corrupted at the same size), is
incomplete: `last_complete` skips it and `drop_incomplete` removes it before training resumes.

Rotation (`save_total_limit`) is smoltrain's, not transformers': transformers deletes the old
checkpoints before our manifest marks the new one complete, so with a limit of 1 a kill in between
left no complete checkpoint at all. `rotate` runs after the manifest and only ever deletes older
complete checkpoints beyond the limit.

A stage is done when its `stage-done.json` (StagePaths.done) sits in its folder (written after its final adapter and,
in a pipeline, its merged model): a resumed pipeline skips done stages.

Imports the standard library and smoltrain.rundir only (no torch, no transformers), so the runner
and the CLI can inspect a run folder cheaply. Never imports textual.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from smoltrain.rundir import RunDir

MANIFEST = "smoltrain-complete.json"
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def mark_complete(checkpoint: Path) -> None:
    """Record every file of a just-saved checkpoint with its size and hash; the manifest itself goes last."""
    files = {
        str(p.relative_to(checkpoint)): {"size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(checkpoint.rglob("*"))
        if p.is_file() and p.name not in (MANIFEST, MANIFEST + ".tmp")
    }
    _write_json_atomically(checkpoint / MANIFEST, {"files": files})


def is_complete(checkpoint: Path) -> bool:
    """Its manifest is there and every file in it still has its size and content."""
    manifest = _read_json(checkpoint / MANIFEST)
    files = manifest.get("files") if manifest else None
    if not isinstance(files, dict) or "trainer_state.json" not in files:
        return False
    for name, entry in files.items():
        path = checkpoint / name
        if not isinstance(entry, dict) or not path.is_file() or path.stat().st_size != entry.get("size"):
            return False
    # Sizes first (cheap, and what a cut-off write changes); then content, which a torn page changes.
    return all(_sha256(checkpoint / name) == entry.get("sha256") for name, entry in files.items())


def step_of(checkpoint: Path) -> int:
    match = _CHECKPOINT.match(checkpoint.name)
    return int(match.group(1)) if match else 0


def trained_to_the_end(checkpoint: Path) -> bool:
    """The checkpoint was saved at the stage's last step (a kill during the final save or a merge):
    a resume has nothing left to train."""
    state = _read_json(checkpoint / "trainer_state.json") or {}
    step, max_steps = state.get("global_step"), state.get("max_steps")
    return isinstance(step, int) and isinstance(max_steps, int) and max_steps > 0 and step >= max_steps


def rotate(folder: Path, keep: int | None) -> list[Path]:
    """Delete the oldest complete checkpoints beyond the newest `keep` (None: keep all); a checkpoint
    that is not complete is never counted as one of the kept, so the last complete one survives."""
    if not keep:
        return []
    complete = [path for _, path in checkpoints_of(folder) if (path / MANIFEST).is_file()]
    removed = complete[:-keep]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


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


def drop_incomplete_everywhere(run: RunDir) -> list[Path]:
    """Every stage's incomplete checkpoints removed (after a full disk: the space lets the run end cleanly)."""
    return [path for stage in run.stage_folders() for path in drop_incomplete(stage.checkpoints)]


def newest_complete(run: RunDir) -> Path | None:
    """The most recently written complete checkpoint of any stage of the run."""
    found = [c for stage in run.stage_folders() if (c := last_complete(stage.checkpoints)) is not None]
    return max(found, key=lambda c: (c / MANIFEST).stat().st_mtime, default=None)


def mark_stage_done(done_file: Path, step: int) -> None:
    _write_json_atomically(done_file, {"step": step})


def stage_done_step(done_file: Path) -> int | None:
    """The final step of a finished stage, or None if the stage is not done."""
    data = _read_json(done_file)
    step = data.get("step") if data else None
    return step if isinstance(step, int) else None


@dataclass
class ResumePoint:
    """Where a stage continues: its last complete checkpoint (None: from step 0) and what was skipped."""

    checkpoint: Path | None
    dropped: list[Path]

    @property
    def step(self) -> int:
        return step_of(self.checkpoint) if self.checkpoint else 0


def resume_point(checkpoints_dir: Path) -> ResumePoint:
    dropped = drop_incomplete(checkpoints_dir)
    return ResumePoint(checkpoint=last_complete(checkpoints_dir), dropped=dropped)
