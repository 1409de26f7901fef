"""The training child process: `python -m smoltrain.engine.worker RUN_DIR [--resume]`.

First takes the run folder's OS lock (smoltrain/rundir.py): a second worker on the same run exits 2
at once, writing no event. Then reads RUN_DIR/config.toml, appends events to RUN_DIR/events.jsonl,
and exits 0 (done, or stopped on request), 2 (a user error, reported as run_failed with a hint; a
full disk is one) or 1 (a bug, reported with its traceback). The first SIGINT/SIGTERM asks the
trainer to finish the current step, save and stop; a second one stops at once (the last complete
checkpoint stays intact: checkpoints are marked complete only after transformers has written them).
`--resume` continues the run in RUN_DIR from its last complete checkpoint (see engine/run.py).

Under accelerate's launcher (`smoltrain run --gpus N`, or a user's own `accelerate launch -m
smoltrain.engine.worker RUN_DIR`) one worker runs per GPU (engine/distributed.py): only rank 0 takes
the lock, writes worker.pid and the events; the other ranks print what they have to say to worker.log.
A stop request is agreed on by all ranks at the next step's end (the launcher puts each rank in its own
session and passes a terminal's Ctrl-C on to each, once). Stopped at once (a second request), rank 0
asks the launcher, its parent, to stop every rank: the others may be waiting on it in a collective.

Training lives here, not in the front end's process, because Unsloth and Liger patch
transformers globally, GPU memory only fully returns at process exit, and a CUDA crash must not
take the UI down. Never imports textual.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from smoltrain.config.load import load_config
from smoltrain.engine import distributed
from smoltrain.engine.control import StopFlag
from smoltrain.engine.events import (
    Emit,
    Metrics,
    RunFailed,
    RunFinished,
    RunStarted,
    StageStarted,
    Warning,
)
from smoltrain.errors import (
    BUG_EXIT_CODE,
    USER_ERROR_EXIT_CODE,
    ConfigError,
    SmoltrainError,
)
from smoltrain.rundir import (
    EventWriter,
    RunDir,
    RunLocked,
    WorkerLock,
    current_attempt,
    disk_full_error,
    is_disk_full,
    read_events,
)


def _install_stop_handlers(stop: StopFlag, emit: Emit) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
            if distributed.is_distributed() and distributed.is_main():
                # The other ranks may be waiting on this one in a collective: the launcher (this process's
                # parent) stops them all, and kills what has not ended 30 s later.
                os.kill(os.getppid(), signal.SIGTERM)
            raise KeyboardInterrupt
        stop.requested = True
        emit(Warning(message="stop requested: finishing this step, then saving", hint="stop again to quit at once"))

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)


def _quiet_libraries() -> None:
    # The front ends render events; library progress bars and advice only clutter worker.log.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    resume = "--resume" in args
    args = [a for a in args if a != "--resume"]
    if len(args) != 1:
        print("usage: python -m smoltrain.engine.worker RUN_DIR [--resume]", file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    run_dir = RunDir(Path(args[0]))
    if not distributed.is_main():
        return _other_rank(run_dir, resume)
    lock = WorkerLock(run_dir)
    try:
        lock.acquire()
    except RunLocked as locked:
        # Not a word into events.jsonl: the events there are the live worker's.
        error = ConfigError(f"{run_dir.root}: this run is already training (worker pid {locked.pid or '?'})",
                            hint="wait for it, or stop it (Ctrl-C where it runs, x on its screen in the app)")  # fmt: skip
        print(error.render(), file=sys.stderr)
        return USER_ERROR_EXIT_CODE
    emit = EventWriter(run_dir.events, reserve=run_dir.reserve)
    stop = StopFlag()
    _install_stop_handlers(stop, emit)
    _quiet_libraries()
    try:
        return _train(run_dir, emit, stop, resume)
    finally:
        emit.close()
        lock.release()


def _other_rank(run_dir: RunDir, resume: bool) -> int:
    """A rank other than 0: the same training, its events dropped (rank 0 writes the run's one stream)."""
    stop = StopFlag()
    _install_stop_handlers(stop, _drop)
    _quiet_libraries()
    return _train(run_dir, _drop, stop, resume)


def _drop(event: object) -> None:
    pass


def _train(run_dir: RunDir, emit: Emit, stop: StopFlag, resume: bool) -> int:
    from smoltrain.engine.library_warnings import LibraryWarnings

    LibraryWarnings(emit).install()  # before the ML stack loads: its import-time warnings count too
    try:
        cfg = load_config(run_dir.config)
        _import_unsloth_first_if_used(cfg)
        distributed.start()
        # The ML stack loads here, after the signal handlers are in place.
        from smoltrain.engine.run import run

        run(cfg, run_dir.root, emit, stop, resume=resume)
        return 0
    except SmoltrainError as exc:
        return _user_error(emit, exc)
    except KeyboardInterrupt:
        emit(_stopped_at_once(run_dir))
        return 0
    except Exception as exc:
        if is_disk_full(exc, run_dir.root):
            from smoltrain.engine.checkpoints import drop_incomplete_everywhere, newest_complete

            if distributed.is_main():  # the run folder is rank 0's to tidy
                drop_incomplete_everywhere(run_dir)  # the half-written checkpoint: its space lets the error be written
            return _user_error(emit, disk_full_error(run_dir, newest_complete(run_dir)))
        # A bug: keep the traceback for the report.
        emit(RunFailed(error_type=type(exc).__name__, message=str(exc) or type(exc).__name__,
                       user_error=False, traceback=traceback.format_exc()))  # fmt: skip
        traceback.print_exc()
        return BUG_EXIT_CODE


def _user_error(emit: Emit, exc: SmoltrainError) -> int:
    print(exc.render(), file=sys.stderr)  # worker.log keeps it too, should the event not fit on a full disk
    emit(RunFailed(**exc.to_dict(), user_error=True))
    return USER_ERROR_EXIT_CODE


def _stopped_at_once(run_dir: RunDir) -> RunFinished:
    """The end of a run stopped by a second Ctrl-C: nothing was saved now, so the step reported is
    the last complete checkpoint's, the one a resume continues from (0: none yet)."""
    from smoltrain.engine.checkpoints import last_complete, step_of

    since = current_attempt(read_events(run_dir.events))
    stage = next((e for e in reversed(since) if isinstance(e, StageStarted)), None)
    stage_names = next((e.stages for e in since if isinstance(e, RunStarted)), [])
    name = stage_names[stage.stage] if stage is not None and len(stage_names) > 1 else None
    checkpoint = last_complete(run_dir.stage(name).checkpoints)
    began = since[0].time if since else time.time()
    logged = max((e.step for e in since if isinstance(e, Metrics)), default=0)
    return RunFinished(status="stopped", step=step_of(checkpoint) if checkpoint else 0, final_dir=None,
                       duration_s=time.time() - began, stopped_at=logged)  # fmt: skip


def _import_unsloth_first_if_used(cfg: object) -> None:
    """Unsloth must be imported before transformers/TRL to patch them; only on CUDA."""
    from smoltrain.engine.model import choose_backend, resolve_device

    backend, _ = choose_backend(cfg.train, resolve_device())  # type: ignore[attr-defined]
    if backend == "unsloth":  # pragma: no cover - CUDA only
        import unsloth  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
