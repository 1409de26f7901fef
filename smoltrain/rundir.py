"""THE owner of the run folder `runs/<name>/`: its paths, the locked event writer, one tolerant reader.

Layout (DESIGN.md, "Run directory"): `config.toml` (the resolved config), `events.jsonl` (append-only),
`worker.log`, `worker.pid` and `worker.lock` (an OS lock held by the live worker), `control/save_now`
(a front end's "save a checkpoint now"), `checkpoints/checkpoint-N/`, `final/`, `fit.json` (the batch
shape auto_fit chose), `start-model/` (a past run's merged model, when the run starts from one); a pipeline keeps each stage's `checkpoints/`, `final/`, `merged/`,
`stage-done.json` and `fit.json` under `stages/<name>/` (a curate stage: `curated/`). Nothing else in smoltrain spells these names.

The event file survives what a hobbyist's machine does to it: the writer appends whole lines with
one `write` each, starts on a fresh line after a torn one (kill -9, full disk), takes a line back
out when a write fails half-way, and keeps a small reserve file it gives up on a full disk so the
run's last word (`run_failed`) still fits. Readers skip torn, mis-encoded and unknown lines, and a
front end reads only the current attempt of a resumed run (`RunHandle` starts at the file's size).

Imports the stdlib and smoltrain.engine.events (pydantic) only: never torch, never textual.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from smoltrain.engine.events import Event, EventBase, RunStarted, parse_event
from smoltrain.errors import DiskFullError

try:  # POSIX; on Windows the pid file alone says who trains a run
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

RESERVE_BYTES = 64 * 1024  # enough for a run_failed event with its traceback
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True)
class StagePaths:
    """Where one stage keeps its checkpoints and results: the run folder itself for a single stage."""

    root: Path

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def final(self) -> Path:
        return self.root / "final"

    @property
    def merged(self) -> Path:
        return self.root / "merged"

    @property
    def done(self) -> Path:
        return self.root / "stage-done.json"

    @property
    def fit(self) -> Path:
        return self.root / "fit.json"

    @property
    def curated(self) -> Path:
        """A curate stage's output: groups.jsonl (every answer and score, appended as it goes), sft.jsonl
        (best-of-K answers), pairs.jsonl (best vs worst) and summary.json."""
        return self.root / "curated"

    def curated_file(self, technique: str) -> Path:
        """What a stage of this technique trains on from this curate stage: best answers (sft) or pairs."""
        return self.curated / ("sft.jsonl" if technique == "sft" else "pairs.jsonl")

    @property
    def trackers(self) -> Path:
        """What a local experiment tracker writes ([logging] report_to: TensorBoard's event files, W&B's run)."""
        return self.root / "trackers"


@dataclass(frozen=True)
class RunDir:
    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    @property
    def events(self) -> Path:
        return self.root / "events.jsonl"

    @property
    def reserve(self) -> Path:
        return self.root / "events.reserve"

    @property
    def worker_log(self) -> Path:
        return self.root / "worker.log"

    @property
    def worker_pid(self) -> Path:
        return self.root / "worker.pid"

    @property
    def lock(self) -> Path:
        return self.root / "worker.lock"

    @property
    def control(self) -> Path:
        return self.root / "control"

    @property
    def save_now(self) -> Path:
        return self.control / "save_now"

    @property
    def final(self) -> Path:
        return self.root / "final"

    @property
    def start_model(self) -> Path:
        """A past run's adapter merged into its base: what a run whose model.name_or_path names a run trains
        on (smoltrain/pastrun.py). Complete once it exists: the merge is written beside it, then renamed."""
        return self.root / "start-model"

    @property
    def samples(self) -> Path:
        """Before/after answers of each policy stage: samples/<stage>.json."""
        return self.root / "samples"

    @property
    def eval(self) -> Path:
        """eval/<subject>.json: every evaluated model's scores (written and read by smoltrain/evalresults.py)."""
        return self.root / "eval"

    @property
    def exports(self) -> Path:
        return self.root / "exports"

    def export_dir(self, fmt: str, stage: str | None = None) -> Path:
        """Where `smoltrain export` writes by default: exports/<format>/, or exports/<stage>/<format>/."""
        return self.exports / stage / fmt if stage else self.exports / fmt

    def stage(self, name: str | None) -> StagePaths:
        """A pipeline stage's folder (`stages/<name>/`), or the run folder for a single-stage run (None)."""
        return StagePaths(self.root / "stages" / name if name else self.root)

    def result(self, stage: str | None = None) -> Path:
        """The trained adapter of a pipeline stage (by its name), or of the run (its last stage)."""
        return self.stage(stage).final if stage else self.final

    def stage_folders(self) -> list[StagePaths]:
        """Every stage folder there is: the run folder itself, then each pipeline stage's."""
        pipeline = self.root / "stages"
        found = sorted(p for p in pipeline.iterdir() if p.is_dir()) if pipeline.is_dir() else []
        return [self.stage(None), *(StagePaths(p) for p in found)]

    def is_run(self) -> bool:
        return self.config.is_file()


# --- the worker's lock ------------------------------------------------------------------------------


class RunLocked(Exception):
    """Another live worker holds this run folder."""

    def __init__(self, pid: int | None) -> None:
        super().__init__(f"worker pid {pid}" if pid else "another worker")
        self.pid = pid


class WorkerLock:
    """The OS lock a worker holds on its run folder for as long as it lives (released by the OS when
    it dies, even by kill -9), so two `smoltrain resume` started together cannot both train it."""

    def __init__(self, run: RunDir) -> None:
        self.run = run
        self._fd: int | None = None

    def acquire(self, wait_s: float = 2.0) -> None:
        """Take the lock (retrying briefly: a front end probing it holds it for an instant) and record
        this process in worker.pid. RunLocked if another worker has it."""
        self.run.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.run.lock, os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            deadline = time.monotonic() + wait_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        os.close(fd)
                        raise RunLocked(_read_pid(self.run.worker_pid)) from None
                    time.sleep(0.05)
        self._fd = fd
        self.run.worker_pid.write_text(str(os.getpid()))

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def running_worker(run_dir: Path) -> int | None:
    """The pid of the worker training this run now, or None. The worker's lock answers it (no stale pid
    file or reused pid can fool it); without fcntl, the pid must be alive and be this run's worker."""
    run = RunDir(run_dir)
    pid = _read_pid(run.worker_pid)
    if fcntl is not None:
        try:
            fd = os.open(run.lock, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return pid if pid is not None else -1
        finally:
            os.close(fd)  # also releases the probe's shared lock
        return None
    return pid if pid is not None and _is_this_runs_worker(pid, run_dir) else None  # pragma: no cover - Windows


def _is_this_runs_worker(pid: int, run_dir: Path) -> bool:  # pragma: no cover - Windows
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


# --- events: one writer, one reader -----------------------------------------------------------------


class EventWriter:
    """Appends events to events.jsonl, one unbuffered write per line, so a reader never waits on a
    buffer and never sees half an event from a write that failed."""

    def __init__(self, path: Path, reserve: Path | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._reserve = reserve
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not _ends_with_newline(path):
            self._write(b"\n")  # the last writer was cut off mid-line: its torn line stays alone
        if reserve is not None and not reserve.exists():
            try:
                reserve.write_bytes(b"\0" * RESERVE_BYTES)
            except OSError:
                reserve.unlink(missing_ok=True)  # already short of space: run without a reserve

    def __call__(self, event: EventBase) -> None:
        self._write((event.to_json() + "\n").encode("utf-8"))

    def _write(self, data: bytes) -> None:
        size = os.fstat(self._fd).st_size
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            os.ftruncate(self._fd, size)  # no torn line left behind
            if exc.errno not in DISK_FULL or not self.release_reserve():
                raise
            _write_all(self._fd, data)

    def release_reserve(self) -> bool:
        """Give the reserve file's space back (on a full disk); False if there is none left to give."""
        if self._reserve is None or not self._reserve.exists():
            return False
        self._reserve.unlink()
        return True

    def close(self) -> None:
        os.close(self._fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


class LineReader:
    """The complete lines appended to a file since the last read, as bytes without their newline. A
    line still being written waits for its newline. `offset` starts the reading part-way (at a resumed
    run's current attempt, or near the end of a long file: `skip_partial_first` then drops the cut line
    it lands in). A file not there yet reads as nothing."""

    def __init__(self, path: Path, offset: int = 0, skip_partial_first: bool = False) -> None:
        self.path = path
        self.offset = offset
        self._pending = b""
        self._skip_first = skip_partial_first and offset > 0

    def read_lines(self) -> list[bytes]:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return []
        self.offset += len(chunk)
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        if self._skip_first and lines:
            lines, self._skip_first = lines[1:], False
        return lines


class EventReader(LineReader):
    """The complete events appended to an events file since the last read (LineReader's lines, parsed);
    a torn, mis-encoded or unknown line (a kill -9, a full disk, a newer smoltrain) is skipped."""

    def read(self) -> list[Event]:
        return [event for line in self.read_lines() if (event := _parse_line(line)) is not None]


def _parse_line(line: bytes) -> Event | None:
    if not line.strip():
        return None
    try:
        return parse_event(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and pydantic's ValidationError are both ValueErrors
        return None


def read_events(path: Path) -> list[Event]:
    """All complete events of a run; a torn last line is skipped."""
    return EventReader(path).read()


def read_tail(path: Path, max_bytes: int = 64 * 1024) -> list[Event]:
    """The complete events in the last `max_bytes` of an events file: enough for a run's status."""
    try:
        size = path.stat().st_size
    except OSError:
        return []
    return EventReader(path, offset=max(0, size - max_bytes), skip_partial_first=True).read()


def tail_events(path: Path, poll: Callable[[], bool], offset: int = 0, interval: float = 0.1) -> Iterator[Event]:
    """Yield events as they are appended to `path` (from `offset`) while `poll()` says the writer is
    alive, then whatever remains."""
    reader = EventReader(path, offset=offset)
    while True:
        alive = poll()
        yield from reader.read()
        if not alive:
            return
        time.sleep(interval)


def current_attempt(events: list[Event]) -> list[Event]:
    """The events since the run was last (re)started: a resumed run's earlier attempts are history."""
    starts = [i for i, e in enumerate(events) if isinstance(e, RunStarted)]
    return events[starts[-1] :] if starts else events


def events_size(run: RunDir) -> int:
    """Where the next attempt's events will begin."""
    try:
        return run.events.stat().st_size
    except OSError:
        return 0


# --- disk space ---------------------------------------------------------------------------------------

_DISK_FULL_WORDS = ("no space left on device", "storagefull", "disk quota exceeded")
_LOW_SPACE_BYTES = 64 * 2**20  # below this, a failed write is taken for a full disk


def free_bytes(folder: Path) -> int:
    """Free space on the disk holding `folder` (or its nearest existing parent)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def format_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(size) < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover - the loop always returns


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Did `exc` come from a full disk? Python raises OSError(ENOSPC), safetensors its own error ("No
    space left on device"), torch's writer a RuntimeError that names no cause: the exception chain,
    its words and the disk itself are asked in turn."""
    for seen in _chain(exc):
        if isinstance(seen, OSError) and seen.errno in DISK_FULL:
            return True
        if any(word in str(seen).lower() for word in _DISK_FULL_WORDS):
            return True
    # torch's zip writer says only "unexpected pos 576 vs 534" (its cause: "basic_ios::clear: iostream
    # error"): an I/O failure, and a disk with next to nothing left, is a full disk.
    said = " ".join(str(e).lower() for e in _chain(exc))
    io_failure = any(word in said for word in ("unexpected pos", "iostream error", "write failed", "i/o error"))
    return io_failure and free_bytes(folder) < _LOW_SPACE_BYTES


def _chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def disk_full_error(run: RunDir, last_checkpoint: Path | None) -> DiskFullError:
    kept = (f"its last complete checkpoint, {last_checkpoint.name}, is intact" if last_checkpoint
            else "no checkpoint was complete yet, so a resume starts from step 0")  # fmt: skip
    return DiskFullError(
        f"the disk holding {run.root} is full ({format_bytes(free_bytes(run.root))} free): the run stopped while "
        f"writing to it; {kept}",
        hint=f"free some space, then continue with: smoltrain resume {run.root}",
    )
