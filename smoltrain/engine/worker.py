"""The training child process: `python -m smoltrain.engine.worker RUN_DIR [--resume]`.

Reads RUN_DIR/config.toml, appends events to RUN_DIR/events.jsonl, and exits 0 (done, or
stopped on request), 2 (a user error, reported as run_failed with a hint) or 1 (a bug, reported
with its traceback). The first SIGINT/SIGTERM asks the trainer to finish the current step, save
and stop; a second one stops at once (the last complete checkpoint stays intact: checkpoints are
marked complete only after transformers has written them). `--resume` continues the run in
RUN_DIR from its last complete checkpoint (see engine/run.py).

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
from smoltrain.engine.control import StopFlag
from smoltrain.engine.events import (
    EventWriter,
    Metrics,
    RunFailed,
    RunFinished,
    RunStarted,
    Warning,
    read_events,
)
from smoltrain.errors import BUG_EXIT_CODE, USER_ERROR_EXIT_CODE, SmoltrainError


def _install_stop_handlers(stop: StopFlag, emit: EventWriter) -> None:
    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.requested:
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
    run_dir = Path(args[0])
    emit = EventWriter(run_dir / "events.jsonl")
    stop = StopFlag()
    _install_stop_handlers(stop, emit)
    _quiet_libraries()
    try:
        cfg = load_config(run_dir / "config.toml")
        _import_unsloth_first_if_used(cfg)
        # The ML stack loads here, after the signal handlers are in place.
        from smoltrain.engine.run import run

        run(cfg, run_dir, emit, stop, resume=resume)
        return 0
    except SmoltrainError as exc:
        emit(RunFailed(**exc.to_dict(), user_error=True))
        return USER_ERROR_EXIT_CODE
    except KeyboardInterrupt:
        emit(_stopped_at_once(run_dir))
        return 0
    except Exception as exc:  # a bug: keep the traceback for the report
        emit(RunFailed(error_type=type(exc).__name__, message=str(exc) or type(exc).__name__,
                       user_error=False, traceback=traceback.format_exc()))  # fmt: skip
        traceback.print_exc()
        return BUG_EXIT_CODE
    finally:
        emit.close()


def _stopped_at_once(run_dir: Path) -> RunFinished:
    """The end of a run stopped by a second Ctrl-C: no checkpoint was written now, so the step is
    the last one logged since this worker started, and the model is in the last checkpoint."""
    events = read_events(run_dir / "events.jsonl")
    started = max((i for i, e in enumerate(events) if isinstance(e, RunStarted)), default=0)
    since = events[started:]
    step = max((e.step for e in since if isinstance(e, Metrics)), default=0)
    began = since[0].time if since else time.time()
    return RunFinished(status="stopped", step=step, final_dir=None, duration_s=time.time() - began)


def _import_unsloth_first_if_used(cfg: object) -> None:
    """Unsloth must be imported before transformers/TRL to patch them; only on CUDA."""
    from smoltrain.engine.model import choose_backend, resolve_device

    backend, _ = choose_backend(cfg.train, resolve_device())  # type: ignore[attr-defined]
    if backend == "unsloth":  # pragma: no cover - CUDA only
        import unsloth  # noqa: F401


if __name__ == "__main__":
    sys.exit(main())
