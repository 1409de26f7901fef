"""How long `smoltrain` takes to show its first screen in a real terminal.

    python bench/tui_first_screen.py [--tries 3] [--size 80x24]

Starts the app in a detached tmux session (a real terminal, unlike Pilot), polls `tmux capture-pane` until
the home screen's "New run" entry is drawn, and reports the median and worst of `--tries` starts (issue 14's
target: under 1 s). Needs tmux; runs from the repository root, on the runs/ folder there.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSION = "smoltrain-bench"
ROOT = Path(__file__).resolve().parent.parent


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def _screen() -> str:
    return _tmux("capture-pane", "-p", "-t", SESSION)


def _wait_for(text: str, timeout: float = 30.0) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if text in _screen():
            return time.perf_counter() - start
        time.sleep(0.02)
    raise TimeoutError(f"{text!r} not on screen after {timeout} s:\n{_screen()}")


def _start(size: str, presets: Path) -> float:
    """Seconds from starting `smoltrain` to its home screen on the terminal."""
    width, height = size.split("x")
    command = f"cd {ROOT} && SMOLTRAIN_PRESETS={presets} exec {shutil.which('smoltrain') or 'smoltrain'}"
    started = time.perf_counter()
    _tmux("new-session", "-d", "-s", SESSION, "-x", width, "-y", height, command)
    _wait_for("New run")
    return time.perf_counter() - started


def _stop() -> None:
    subprocess.run(["tmux", "kill-session", "-t", SESSION], capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=3)
    parser.add_argument("--size", default="80x24")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("needs tmux", file=sys.stderr)
        return 2
    times = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.tries):
            _stop()
            try:
                times.append(_start(args.size, Path(folder)))
            finally:
                _stop()
            time.sleep(0.5)
    print(f"first screen at {args.size}: median {statistics.median(times):.2f} s, worst {max(times):.2f} s "
          f"({args.tries} starts: {', '.join(f'{t:.2f}' for t in times)})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
