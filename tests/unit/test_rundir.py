"""The run folder's owner: the event writer and reader survive torn lines, bad bytes and a full disk;
the worker lock lets only one worker train a run; a front end reads only the current attempt."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from smoltrain.engine import events as ev
from smoltrain.rundir import (
    EventReader,
    EventWriter,
    RunDir,
    RunLocked,
    WorkerLock,
    is_disk_full,
    read_events,
    read_tail,
    running_worker,
    tail_events,
)
from tests.unit.test_events import SAMPLES


def test_read_events_skips_a_torn_last_line(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    path.write_text(SAMPLES[0].to_json() + "\n" + SAMPLES[2].to_json()[:20])
    assert [e.type for e in read_events(path)] == ["run_started"]


def test_the_writer_starts_on_a_fresh_line_after_a_torn_one(tmp_path: Path):
    """kill -9 or a full disk cut the last line: the next worker's first event must not be glued to it."""
    path = tmp_path / "events.jsonl"
    path.write_text(SAMPLES[0].to_json() + "\n" + SAMPLES[2].to_json()[:20])
    writer = EventWriter(path)
    writer(SAMPLES[1])
    writer.close()
    assert [e.type for e in read_events(path)] == ["run_started", "stage_started"]


def test_invalid_utf8_is_skipped_not_fatal(tmp_path: Path):
    """A file cut inside a multi-byte character (or damaged) loses that line only."""
    path = tmp_path / "events.jsonl"
    sample = next(e for e in SAMPLES if e.type == "sample").to_json().encode()  # its completion holds a non-ASCII mark
    cut = sample[: sample.index("✓".encode()) + 1]
    path.write_bytes(SAMPLES[0].to_json().encode() + b"\n" + cut + b"\n" + b"\xff\xfe\n" + SAMPLES[1].to_json().encode() + b"\n")
    assert [e.type for e in read_events(path)] == ["run_started", "stage_started"]
    assert [e.type for e in read_tail(path, max_bytes=10_000)] == ["run_started", "stage_started"]


def test_a_failed_write_leaves_no_torn_line_and_the_reserve_makes_room(tmp_path: Path, monkeypatch):
    """On a full disk the writer takes its half line back out, gives up its reserve file, and the
    event (the run's last word) is written whole."""
    run = RunDir(tmp_path)
    writer = EventWriter(run.events, reserve=run.reserve)
    writer(SAMPLES[0])
    assert run.reserve.stat().st_size > 0
    real_write, calls = os.write, []

    def full_disk_once(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            real_write(fd, bytes(data[:10]))  # part of the line reached the disk
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full_disk_once)
    writer(SAMPLES[-1])
    writer.close()
    assert not run.reserve.exists()
    assert [e.type for e in read_events(run.events)] == ["run_started", "run_failed"]
    assert run.events.read_bytes().count(b"\n") == 2


def test_without_a_reserve_a_full_disk_raises_and_leaves_the_file_whole(tmp_path: Path, monkeypatch):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer(SAMPLES[0])
    before = path.read_bytes()

    def full(fd: int, data: bytes) -> int:
        os.ftruncate(fd, os.fstat(fd).st_size)  # nothing more fits
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError) as raised:
        writer(SAMPLES[1])
    monkeypatch.undo()
    writer.close()
    assert path.read_bytes() == before
    assert is_disk_full(raised.value, tmp_path)


def test_disk_full_is_recognised_through_library_wrappers(tmp_path: Path):
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as exc:
            raise RuntimeError("saving failed") from exc
    except RuntimeError as wrapped:
        assert is_disk_full(wrapped, tmp_path)
    assert is_disk_full(Exception("Error while serializing: IoError(Os { code: 28, kind: StorageFull })"), tmp_path)
    assert not is_disk_full(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"), tmp_path)  # the disk has room
    assert not is_disk_full(ValueError("shapes do not match"), tmp_path)


def test_tail_yields_events_while_they_are_written(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    done = threading.Event()

    def produce() -> None:
        for event in SAMPLES:
            writer(event)
            time.sleep(0.01)
        writer.close()
        done.set()

    threading.Thread(target=produce).start()
    got = [e.type for e in tail_events(path, poll=lambda: not done.is_set(), interval=0.005)]
    assert got == [e.type for e in SAMPLES]


def test_a_reader_from_an_offset_sees_only_the_new_attempt(tmp_path: Path):
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    writer(SAMPLES[0])
    writer(ev.RunFinished(status="completed", step=10, final_dir="/r/final", duration_s=3.2))
    offset = path.stat().st_size
    writer(SAMPLES[1])
    writer.close()
    assert [e.type for e in EventReader(path, offset=offset).read()] == ["stage_started"]


def test_one_worker_holds_a_run(tmp_path: Path):
    """The OS lock: a second holder is refused and told the first one's pid; the lock goes with its holder."""
    run = RunDir(tmp_path)
    code = "import sys, time; from pathlib import Path; from smoltrain.rundir import RunDir, WorkerLock; " \
           "WorkerLock(RunDir(Path(sys.argv[1]))).acquire(); print('held', flush=True); time.sleep(60)"  # fmt: skip
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        assert running_worker(tmp_path) == holder.pid
        with pytest.raises(RunLocked) as refused:
            WorkerLock(run).acquire(wait_s=0.2)
        assert refused.value.pid == holder.pid
    finally:
        holder.kill()
        holder.wait()
    assert running_worker(tmp_path) is None  # killed -9: the OS dropped its lock
    second = WorkerLock(run)
    second.acquire(wait_s=0.2)
    assert running_worker(tmp_path) == os.getpid()
    second.release()


def test_stage_paths(tmp_path: Path):
    run = RunDir(tmp_path)
    assert run.stage(None).checkpoints == tmp_path / "checkpoints"
    assert run.stage("dpo").merged == tmp_path / "stages" / "dpo" / "merged"
    run.stage("sft").root.mkdir(parents=True)
    assert [s.root for s in run.stage_folders()] == [tmp_path, tmp_path / "stages" / "sft"]


def test_resume_checks_read_a_mis_encoded_events_file(tmp_path: Path):
    """It raised UnicodeDecodeError with a traceback; now the damaged line is skipped."""
    from smoltrain import runner

    run = RunDir(tmp_path)
    run.config.write_text("")
    run.events.write_bytes(SAMPLES[0].to_json().encode() + b"\n" + b'{"type": "run_fin\xc3')
    assert runner.resume_checks(tmp_path) == tmp_path


def test_low_disk_space_is_warned_about_before_training(tmp_path: Path, monkeypatch):
    """Checkpoints (adapter + optimizer, save_total_limit + 1 at once), the final adapter and each merge."""
    from types import SimpleNamespace

    from smoltrain.config.load import load_config
    from smoltrain.config.presets import PRESETS_DIR
    from smoltrain.engine import preflight

    cfg = load_config(PRESETS_DIR / "demo.toml")
    loaded = SimpleNamespace(trainable_params=10_000_000, total_params=500_000_000, device="cpu",
                             model=SimpleNamespace(config=SimpleNamespace(to_dict=dict)))  # fmt: skip
    needed = preflight.disk_needed(cfg, 10_000_000, 500_000_000, "adamw_torch")
    merges = 2  # sft and dpo hand over to a later stage; the reward model does not replace the policy
    assert needed == 10_000_000 * (12 * (cfg.train.save_total_limit + 1) + 4) * 4 + merges * 500_000_000 * 2
    said: list = []
    monkeypatch.setattr("smoltrain.rundir.free_bytes", lambda folder: needed // 2)
    preflight.check_disk_space(tmp_path, cfg, loaded, said.append)
    assert len(said) == 1 and str(tmp_path) in said[0].message and "free" in said[0].message
    monkeypatch.setattr("smoltrain.rundir.free_bytes", lambda folder: needed * 2)
    preflight.check_disk_space(tmp_path, cfg, loaded, said.append)
    assert len(said) == 1
