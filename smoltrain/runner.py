"""Start, watch and stop a training run; shared by the headless printer and the TUI.

`create_run_dir` makes `runs/<name>/` (its layout is smoltrain/rundir.py's) and writes the resolved
`config.toml` there (the file the worker reads, and the one a user re-runs). `start` launches
`smoltrain.engine.worker` as a child process in its own session, so a terminal's Ctrl-C reaches only
the front end, which forwards it as a stop request. `RunHandle.events()` yields this attempt's typed
events as the worker writes them (a resumed run's earlier attempts are not replayed).
`resume_checks` says whether a run folder can be resumed (without torch), and `start(run_dir,
resume=True)` continues it from its last complete checkpoint.

More than one GPU (`[distributed] gpus = N`, `smoltrain run --gpus N`): the child is accelerate's own
launcher (`accelerate launch --multi_gpu --num_processes N -m smoltrain.engine.worker RUN_DIR`), which
starts one worker per GPU; the strategy (DDP, FSDP, DeepSpeed) is set by the worker through the Trainer's
arguments, so a user's own `accelerate launch` runs the same worker. The run folder is made here, once,
before any rank starts. A stop request goes to rank 0 (worker.pid), and the ranks agree on it at the next
step; at a second one rank 0 asks the launcher to stop every rank (it kills what is left after 30 s).
The launcher's exit code says only that a rank failed, so the run's own end event decides the code.

Imports no torch and no textual.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from smoltrain.config.load import dump_config, load_config
from smoltrain.config.schema import RunConfig
from smoltrain.engine.events import Event, RunFailed, RunFinished, RunStarted
from smoltrain.errors import BUG_EXIT_CODE, USER_ERROR_EXIT_CODE, ConfigError
from smoltrain.ranks import rank, world_size
from smoltrain.rundir import (
    EventReader,
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
    processes: int = 1  # more than one: `process` is accelerate's launcher, the workers are its children

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
        """Ask the worker to save and stop after the current step; asked twice, it stops at once. With more
        than one process the request goes to rank 0 (worker.pid): the ranks agree on it at the step's end,
        and a second one makes rank 0 tell the launcher to stop every rank at once."""
        if self.process.poll() is not None:
            return
        rank0 = running_worker(self.run_dir) if self.processes > 1 else None
        if rank0 is not None:
            os.kill(rank0, signal.SIGINT)
        else:
            self.process.send_signal(signal.SIGINT)

    def wait(self) -> int:
        code = self.process.wait()
        return code if self.processes == 1 else self._code_from_events(code)

    def _code_from_events(self, launcher_code: int) -> int:
        """A launcher exits 1 whatever failed in a rank (and 130 once it passed a Ctrl-C on): the run's end
        event says whether it finished, stopped, or failed on a user error or a bug."""
        attempt = EventReader(self.events_path, offset=self.events_offset).read()
        ends = [e for e in attempt if isinstance(e, (RunFinished, RunFailed))]
        if not ends:
            return launcher_code
        end = ends[-1]
        if isinstance(end, RunFinished):
            return 0
        return USER_ERROR_EXIT_CODE if end.user_error else BUG_EXIT_CODE


RANK_WAIT_S = 120.0  # how long the other ranks wait for rank 0 to make the run folder


def rank_run_dir(cfg: RunConfig, name: str | None) -> Path:
    """The run folder of a run the user launched themselves (`accelerate launch -m smoltrain run ...`): every rank
    must find the same one, so it needs a name; rank 0 makes it (recording the launcher's process count as
    distributed.gpus, so a resume knows it), the others wait for its config.toml."""
    name = name or cfg.name
    if not name:
        raise ConfigError("under accelerate launch, every process must find the same run folder: give the run a name",
                          hint="add --name NAME (or name = \"...\" in the preset)")  # fmt: skip
    check_run_name(name)
    ranks = world_size()
    cfg = cfg.model_copy(update={"distributed": cfg.distributed.model_copy(update={"gpus": ranks})})
    if rank() == 0:
        return create_run_dir(cfg, name)
    run = RunDir(Path(cfg.output_dir).expanduser().resolve() / name)
    deadline = time.monotonic() + RANK_WAIT_S
    while not run.config.is_file():
        if time.monotonic() > deadline:
            raise ConfigError(f"{run.root}: rank 0 did not create this run folder within {RANK_WAIT_S:.0f} s",
                              hint="see rank 0's error above; every process needs the same preset, --name and output_dir")  # fmt: skip
        time.sleep(0.2)
    return run.root


def resume_checks(run_dir: Path, gpus: int | None = None) -> Path:
    """The resolved run folder if it can be resumed (on `gpus` processes, when given); a ConfigError naming
    why not otherwise."""
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
    if gpus is not None and gpus != (saved := run_processes(run_dir)):
        raise ConfigError(
            f"--gpus {gpus}: this run trains on {saved} process{'es' if saved > 1 else ''} (distributed.gpus in "
            f"{run.config}); its checkpoints hold each process's data position and random state",
            hint=f"resume it with --gpus {saved} (or without --gpus); to train on {gpus}, start a new run from it: "
            f"set model.name_or_path = \"{run_dir}\"",
        )
    return run_dir


def _has_progress(run: RunDir) -> bool:
    """A complete checkpoint or a finished pipeline stage: what a resume continues from."""
    from smoltrain.engine.checkpoints import newest_complete

    return newest_complete(run) is not None or any(stage.done.is_file() for stage in run.stage_folders())


def worker_command(run_dir: Path, resume: bool, processes: int) -> list[str]:
    """The worker's command line: itself, or under accelerate's launcher with one process per GPU."""
    worker = ["-m", "smoltrain.engine.worker", str(run_dir), *(["--resume"] if resume else [])]
    if processes == 1:
        return [sys.executable, *worker]
    return [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
            "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
            "--main_process_port", str(_free_port()), *worker]  # fmt: skip


def _free_port() -> int:
    """A port for the ranks' rendezvous: two runs at once must not both take accelerate's default 29500."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def visible_gpus() -> int | None:
    """NVIDIA GPUs this process may use (nvidia-smi, narrowed by CUDA_VISIBLE_DEVICES); None without nvidia-smi."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--list-gpus"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = sum(1 for line in out.splitlines() if line.startswith("GPU "))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        found = min(found, len([v for v in visible.split(",") if v.strip() and v.strip() != "-1"]))
    return found


def check_gpus(processes: int) -> None:
    """More processes than GPUs is a user error; with no NVIDIA GPU at all they run on the CPU (gloo), which is
    how the tests and a laptop try a multi-GPU preset."""
    if processes == 1:
        return
    found = visible_gpus()
    if found is not None and 0 < found < processes:
        raise ConfigError(f"distributed.gpus = {processes}, but this machine has {found} GPU{'s' if found > 1 else ''}",
                          hint=f"use --gpus {found} or fewer (the effective batch is micro_batch_size x grad_accum x gpus)")  # fmt: skip


def run_processes(run_dir: Path) -> int:
    """How many processes the run in this folder trains with (its config's distributed.gpus)."""
    return load_config(RunDir(run_dir).config).distributed.gpus


def start(run_dir: Path, resume: bool = False) -> RunHandle:
    """Launch the worker on an existing run folder (`resume`: continue from its last complete checkpoint)."""
    run = RunDir(run_dir)
    processes = run_processes(run_dir)
    check_gpus(processes)
    events_offset = events_size(run)
    log = run.worker_log.open("ab")
    log_offset = log.tell()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        worker_command(run_dir, resume, processes),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        start_new_session=True,  # the front end decides what a Ctrl-C means
    )
    log.close()
    # worker.pid is written by the worker once it holds the run's lock: a second worker refused
    # the lock must not overwrite the first one's pid.
    return RunHandle(run_dir=run_dir, process=process, events_offset=events_offset, log_offset=log_offset,
                     processes=processes)  # fmt: skip


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
