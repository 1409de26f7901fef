"""Start, watch and stop a training run; shared by the headless printer and the TUI.

`create_run_dir` makes `runs/<name>/` (its layout is smoltrain/rundir.py's) and writes the resolved
`config.toml` there (the file the worker reads, and the one a user re-runs). `start` launches
`smoltrain.engine.worker` as a child process in its own session, so a terminal's Ctrl-C reaches only
the front end, which forwards it as a stop request. `RunHandle.events()` yields this attempt's typed
events as the worker writes them (a resumed run's earlier attempts are not replayed).
`resume_checks` says whether a run folder can be resumed (without torch), and `start(run_dir,
resume=True)` continues it from its last complete checkpoint.

Imports no torch and no textual.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from smoltrain.config.load import dump_config
from smoltrain.config.schema import RunConfig
from smoltrain.engine.events import Event, RunFinished, RunStarted
from smoltrain.errors import ConfigError
from smoltrain.rundir import (
    RunDir,
    events_size,
    read_events,
    running_worker,
    tail_events,
)


def default_run_name(preset: str | Path) -> str:
    return f"{Path(preset).stem}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_run_name(name: str) -> None:
    """A run name is one folder name under output_dir: `../x` or `a/b` would put the run elsewhere."""
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\", os.sep)) or name.startswith("."):
        raise ConfigError(
            f"--name {name!r}: a run name must be a plain folder name (no '/', '..' or leading '.')",
            hint="for example --name my-first-sft; the run goes to <output_dir>/<name>",
        )


def create_run_dir(cfg: RunConfig, name: str) -> Path:
    """Make `<output_dir>/<name>/` with the resolved config; refuses to reuse a run's folder."""
    check_run_name(name)
    run = RunDir(Path(cfg.output_dir).expanduser().resolve() / name)
    run_dir = run.root
    if run.config.exists():
        raise ConfigError(
            f"run folder {run_dir} already exists", hint="choose another --name, or `smoltrain resume` that run"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        run.config.write_text(dump_config(cfg.model_copy(update={"name": name})), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"output_dir: cannot write the run folder {run_dir} ({exc.strerror})",
            hint="set output_dir to a folder you can write to",
        ) from None
    return run_dir


@dataclass
class RunHandle:
    run_dir: Path
    process: subprocess.Popen[bytes]
    events_offset: int = 0  # where this attempt's events begin: a resumed run's earlier ones are history
    log_offset: int = 0  # the same in worker.log

    @property
    def events_path(self) -> Path:
        return RunDir(self.run_dir).events

    @property
    def log_path(self) -> Path:
        return RunDir(self.run_dir).worker_log

    def events(self, interval: float = 0.1) -> Iterator[Event]:
        """Every event of this attempt, as written, until the worker exits."""
        return tail_events(self.events_path, poll=lambda: self.process.poll() is None,
                           offset=self.events_offset, interval=interval)  # fmt: skip

    def log_errors(self) -> list[str]:
        """The error lines this attempt's worker printed (a worker that could not even start, such as
        one refused the run's lock, has no event to tell it with)."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(self.log_offset)
                text = f.read().decode("utf-8", errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.startswith(("error: ", "  hint: "))]

    def request_stop(self) -> None:
        """Ask the worker to save and stop after the current step; asked twice, it stops at once."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)

    def wait(self) -> int:
        return self.process.wait()


def resume_checks(run_dir: Path) -> Path:
    """The resolved run folder if it can be resumed; a ConfigError naming why not otherwise."""
    run_dir = Path(run_dir).expanduser().resolve()
    run = RunDir(run_dir)
    if not run.is_run():
        raise ConfigError(
            f"{run_dir}: not a run folder (no config.toml)", hint="give a folder under runs/, e.g. runs/demo-sft-20260101-120000"
        )
    ends = [e for e in read_events(run.events) if isinstance(e, (RunFinished, RunStarted)) or e.type == "run_failed"]
    last = ends[-1] if ends else None
    pid = running_worker(run_dir)
    if pid is not None:
        raise ConfigError(
            f"{run_dir}: this run is still training (worker pid {pid})",
            hint="stop it first (Ctrl-C where it runs, x on its screen in the app), then resume it",
        )
    if last is not None and last.type == "run_failed" and getattr(last, "user_error", False) and not _has_progress(run):
        raise ConfigError(
            f"{run_dir}: this run failed before it saved anything ({getattr(last, 'message', '')}); resuming "
            "would fail again the same way",
            hint=f"fix what the error names in {run.config} (or the preset), then run it again: "
            f"smoltrain run {run.config} --name NEW_NAME",
        )
    if isinstance(last, RunFinished) and last.status == "completed":
        raise ConfigError(
            f"{run_dir}: this run already finished (step {last.step}); there is nothing to resume",
            hint=f"its result is in {last.final_dir}; to train more, start a new run: "
            f"smoltrain run {run_dir / 'config.toml'} --name NEW_NAME",
        )
    return run_dir


def _has_progress(run: RunDir) -> bool:
    """A complete checkpoint or a finished pipeline stage: what a resume continues from."""
    from smoltrain.engine.checkpoints import newest_complete

    return newest_complete(run) is not None or any(stage.done.is_file() for stage in run.stage_folders())


def start(run_dir: Path, resume: bool = False) -> RunHandle:
    """Launch the worker on an existing run folder (`resume`: continue from its last complete checkpoint)."""
    run = RunDir(run_dir)
    events_offset = events_size(run)
    log = run.worker_log.open("ab")
    log_offset = log.tell()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "smoltrain.engine.worker", str(run_dir), *(["--resume"] if resume else [])],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # the front end decides what a Ctrl-C means
    )
    log.close()
    # worker.pid is written by the worker once it holds the run's lock: a second worker refused
    # the lock must not overwrite the first one's pid.
    return RunHandle(run_dir=run_dir, process=process, events_offset=events_offset, log_offset=log_offset)


def request_stop(run_dir: Path) -> bool:
    """Ask the worker training this run, whoever started it, to save and stop (SIGINT, as Ctrl-C
    would); asked twice, it stops at once. False when no worker is training it."""
    pid = running_worker(run_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)
    return True


def request_checkpoint(run_dir: Path) -> Path:
    """Ask a running worker to save a checkpoint after the current step, without stopping.

    Writes the empty request file `control/save_now`; the worker polls for it and removes it once
    the checkpoint is written (so its presence also means "not saved yet")."""
    request = RunDir(run_dir).save_now
    request.parent.mkdir(parents=True, exist_ok=True)
    request.touch()
    return request
