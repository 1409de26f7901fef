"""The one-call GPU check: every CUDA line smoltrain has, in 8 minutes on a lent H200; and its CPU rehearsal.

    bash bench/gpu_check.sh                      # on the device (installs .whl/ first; see gpu_check.sh)
    bash bench/gpu_check.sh --only tiny,grpo-8gb # a rerun of some steps
    bash bench/gpu_check.sh --plan               # here, on a CPU: steps, wheels, size check, CPU smoke
    bash bench/gpu_check.sh --plan --no-download # the same without the network (what the test runs)

Steps, most important first, each a subprocess with its own time budget (killed with its arms at the
end of it): the tiny model trains every technique on CUDA (is 4-bit, Liger, bf16, paged 8-bit AdamW
and non-reentrant checkpointing really on?); SFT of the Llama-3.1-8B shape at 2048 tokens, arms B, A
and C (bench/run.py); GRPO of the Qwen2.5-1.5B shape, 8 x 512, on an emulated 8 GiB card; a coarse
bisection of the longest 8B SFT sequence on an emulated 12 GiB card (bench/fit_cards.py). After every
step the summary is rewritten, so a cut-off run keeps what it measured: $OUT/gpu-check.json and
gpu-check.md ($OUT defaults to ./gpu-check-out), with every step's output in gpu-check.log. The
verdicts are bench/gpu_verdicts.py's; the short table of figures against docs/benchmarks.md's targets
is printed last.

--plan prints the steps and budgets, builds .whl/ (bench/wheels.py) unless --no-download, checks that
what travels stays under 64 MiB, and runs the tiny step's CPU variant through the same runner and
verdicts ($OUT/plan.json). Imports no torch: the parent stays light, the steps do the work.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import gpu_verdicts as verdicts
from bench import wheels
from bench.shapes import PROJECT_ROOT

TOTAL_BUDGET_S = 8 * 60
INSTALL_BUDGET_S = 30  # bench/gpu_check.sh's pip install of .whl/, before this module starts


@dataclass(frozen=True)
class Step:
    name: str
    budget_s: int
    what: str
    commands: tuple[tuple[str, ...], ...]  # python argv, run in order; {out} and {timeout} filled in


def _run_py(*args: str) -> tuple[str, ...]:
    return ("bench/run.py", *args, "--timeout", "{timeout}", "--out", "{out}")


STEPS = (
    Step("tiny", 90, "tiny model, sft/dpo/reward/grpo, 3 steps each on CUDA (B): is every technique really on?",
         (_run_py("--shape", "tiny", "--technique", "all", "--arms", "B", "--seq-len", "96", "--steps", "3",
                  "--num-generations", "4", "--completion-len", "32"),)),
    Step("sft-8b", 165, "Llama-3.1-8B shape, SFT 2048 tokens, 4 steps, arms B, A, C: tokens/s, memory, MFU, ratios",
         (("-m", "bench.shapes", "llama-3.1-8b"),
          _run_py("--shape", "llama-3.1-8b", "--technique", "sft", "--arms", "B,A,C", "--seq-len", "2048", "--steps", "4"))),
    Step("grpo-8gb", 80, "Qwen2.5-1.5B shape, GRPO 8 generations x 512 tokens, 3 steps (B) on an emulated 8 GiB card",
         (("-m", "bench.shapes", "qwen2.5-1.5b"),
          _run_py("--shape", "qwen2.5-1.5b", "--technique", "grpo", "--arms", "B", "--num-generations", "8",
                  "--completion-len", "512", "--seq-len", "576", "--steps", "3", "--mem-cap-gb", "8"))),
    Step("fit-12gb", 115, "Llama-3.1-8B shape, SFT on an emulated 12 GiB card (B): longest sequence, 8K-24K by 4K",
         (("-m", "bench.shapes", "llama-3.1-8b"),
          ("bench/fit_cards.py", "sft", "--shape", "llama-3.1-8b", "--cards", "12", "--arms", "B", "--granularity", "4096",
           "--min-seq-len", "8192", "--max-seq-len", "24576", "--timeout", "{timeout}", "--out", "{out}"))),
)  # fmt: skip
# The tiny step's CPU variant: the same runner, run.py, arm B and verdicts, at CPU sizes.
SMOKE = Step("smoke", 120, "tiny model, SFT 2 steps on the CPU (B): the runner, the arm and the verdicts",
             (_run_py("--shape", "tiny", "--technique", "sft", "--arms", "B", "--seq-len", "32", "--steps", "2"),))
VERSIONS = ("torch", "transformers", "trl", "peft", "accelerate", "bitsandbytes", "liger-kernel", "datasets", "pydantic",
            "huggingface-hub", "tokenizers", "safetensors", "pyarrow", "fsspec", "triton", "unsloth")  # fmt: skip


def run_step(step: Step, work: Path) -> dict[str, Any]:
    """Run a step's commands inside its budget; return its record (status ok, timeout or `exit N`)."""
    out = work / step.name
    if out.exists():
        shutil.rmtree(out)  # an earlier run's arms and probes must not be read as this one's
    out.mkdir(parents=True)
    log = out / "step.log"
    started, status = time.monotonic(), "ok"
    with log.open("w") as handle:
        for argv in step.commands:
            left = step.budget_s - (time.monotonic() - started)
            command = [sys.executable, *(a.format(out=out, timeout=max(1, int(left))) for a in argv)]
            handle.write(f"$ {' '.join(command)}\n")
            handle.flush()
            code = _run(command, left, handle)
            if code is None:
                status = "timeout"
                break
            if code != 0:
                status = f"exit {code}"
                break
    record = {"name": step.name, "budget_s": step.budget_s, "what": step.what, "status": status,
              "seconds": time.monotonic() - started}  # fmt: skip
    if status != "ok":
        record["log_tail"] = log.read_text(errors="replace")[-2000:]
    return record


def _run(command: list[str], timeout_s: float, log: Any) -> int | None:
    """The exit code, or None when the budget ran out (the command and every arm it started are killed)."""
    if timeout_s <= 0:
        return None
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(command, cwd=PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):  # its own process group: the arms go too
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=grace)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        log.write(f"\ngpu_check: stopped at the step's budget ({timeout_s:.0f} s left when it started)\n")
        return None


def evaluate(step: Step, work: Path, device: str) -> dict[str, Any]:
    """The step's checks, figures, estimates and its own table (results.md or fit.md)."""
    out = work / step.name
    results = verdicts.load_results(out)
    checks = verdicts.check_rows(step.name, results, device)
    figures: list[dict[str, Any]] = []
    if step.name in ("tiny", "smoke"):
        where = "CUDA" if device == "cuda" else "CPU"
        target = "all five really on" if device == "cuda" else "4-bit, non-reentrant checkpointing; no Liger, bf16, 8-bit AdamW"
        for c in checks:
            missing = [n for n, f in c["facts"].items() if not f["ok"]]
            figures.append({"figure": f"{c['run']} on {where}: {', '.join(verdicts.TECHNIQUE_FACTS)}", "target": target,
                            "measured": "as expected" if not missing else "not as expected: " + ", ".join(missing),
                            "verdict": "met" if not missing else "missed"})  # fmt: skip
        if not checks:
            figures.append({"figure": f"tiny model on {where}", "target": target, "measured": "no run finished",
                            "verdict": "not measured"})  # fmt: skip
    elif step.name == "sft-8b":
        figures = verdicts.sft_figures(results, "8B SFT 2048")
    elif step.name == "grpo-8gb":
        figures = verdicts.grpo_figures(results, "1.5B GRPO 8x512 in 8 GiB (B)", 8)
    elif step.name == "fit-12gb":
        probes = json.loads((out / "probes.json").read_text()) if (out / "probes.json").exists() else []
        figures = verdicts.fit_figures(probes, "8B SFT on 12 GiB: longest sequence (B)", 16384)
    table = next((p.read_text() for p in (out / "results.md", out / "fit.md") if p.exists()), "")
    if not table and (out / "probes.json").exists():
        table = "probes so far (the search was cut off):\n\n```json\n" + (out / "probes.json").read_text() + "\n```\n"
    return {"checks": checks, "figures": figures, "estimates": verdicts.estimate_rows(step.name, out), "table": table}


def environment() -> dict[str, Any]:
    """The GPU (nvidia-smi) and each library's version and where it was imported from (/tmp/site: carried)."""
    import importlib.metadata as md

    versions: dict[str, str | None] = {}
    for name in VERSIONS:
        try:
            dist = md.distribution(name)
            versions[name] = f"{dist.version} ({Path(str(dist.locate_file(''))).as_posix()})"
        except md.PackageNotFoundError:
            versions[name] = None
    gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, check=False) if _has("nvidia-smi") else None  # fmt: skip
    return {"gpu": gpu.stdout.strip() if gpu and gpu.returncode == 0 else None, "python": sys.version.split()[0],
            "versions": versions}  # fmt: skip


def _has(program: str) -> bool:
    return shutil.which(program) is not None


def write_summary(summary: dict[str, Any], out: Path, stem: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=2, default=str))
    env = summary.get("environment", {})
    versions = ", ".join(f"{k} {v.split(' ')[0]}" for k, v in env.get("versions", {}).items() if v)
    lines = [f"## GPU check: {summary['date']}, {env.get('gpu') or 'no GPU'}", "", f"- versions: {versions}",
             f"- command: `{summary['command']}`", "", *verdicts.markdown_tables(summary), ""]  # fmt: skip
    for step in summary["steps"]:
        if step.get("table"):
            lines += [f"### step {step['name']}: {step['what']}", "", step["table"], ""]
    (out / f"{stem}.md").write_text("\n".join(lines))


def check(steps: tuple[Step, ...], work: Path, out: Path, device: str, stem: str, command: str) -> dict[str, Any]:
    """Run the steps in order; after each, fold its verdicts into the summary and write it."""
    summary: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": command, "device": device,
                               "environment": environment(), "steps": [], "figures": [], "checks": [], "estimates": []}  # fmt: skip
    if device == "cuda":
        installed = os.environ.get("GPU_CHECK_INSTALL", "not run")
        summary["steps"].append({"name": "install", "budget_s": INSTALL_BUDGET_S, "what": "pip install .whl/ into /tmp/site",
                                 "status": installed, "seconds": float(os.environ.get("GPU_CHECK_INSTALL_S", 0))})  # fmt: skip
    log = out / f"{stem}.log"
    out.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    for step in steps:
        print(f"gpu_check: {step.name} (budget {step.budget_s} s): {step.what}", flush=True)
        record = run_step(step, work)
        with log.open("a") as handle:
            handle.write(f"===== {step.name}: {record['status']} after {record['seconds']:.0f} s\n")
            handle.write((work / step.name / "step.log").read_text(errors="replace") + "\n")
        found = evaluate(step, work, device)
        record["table"] = found.pop("table")
        summary["steps"].append(record)
        for key in ("figures", "checks", "estimates"):
            summary[key] += found[key]
        summary["memory_figure"] = verdicts.estimate_figure(summary["estimates"])
        write_summary(summary, out, stem)
        print(f"gpu_check: {step.name}: {record['status']} in {record['seconds']:.0f} s", flush=True)
    return summary


def print_plan(steps: tuple[Step, ...]) -> int:
    total = INSTALL_BUDGET_S + sum(s.budget_s for s in steps)
    print(f"steps on the device (budgets: {total} s of {TOTAL_BUDGET_S} s):")
    print(f"  {'install':<9} {INSTALL_BUDGET_S:>4} s  pip install .whl/ into /tmp/site (bench/gpu_check.sh)")
    for s in steps:
        print(f"  {s.name:<9} {s.budget_s:>4} s  {s.what}")
    print(f"  {'total':<9} {total:>4} s")
    return total


def plan(args: argparse.Namespace, command: str) -> int:
    total = print_plan(STEPS)
    if not args.no_download:
        wheels.download()
        wheels.build()
    size = wheels.size_check()
    print("\n".join(wheels.report(size)))
    print("CPU smoke: the tiny step's code path on the CPU", flush=True)
    smoke = check((SMOKE,), args.work, args.out, "cpu", "plan", command)
    smoke_ok = smoke["steps"][-1]["status"] == "ok" and all(f["verdict"] == "met" for f in smoke["figures"])
    result = {"steps": [{"name": "install", "budget_s": INSTALL_BUDGET_S}] + [{"name": s.name, "budget_s": s.budget_s, "what": s.what} for s in STEPS],
              "total_budget_s": total, "budget_limit_s": TOTAL_BUDGET_S, "size_check": size.to_json(),
              "smoke": {"ok": smoke_ok, "summary": smoke}}  # fmt: skip
    (args.out / "plan.json").write_text(json.dumps(result, indent=2, default=str))
    print("\n".join(verdicts.markdown_tables(smoke)))
    ok = total <= TOTAL_BUDGET_S and size.fits and smoke_ok
    print(f"plan: budgets {total} s <= {TOTAL_BUDGET_S} s: {total <= TOTAL_BUDGET_S}; travels "
          f"{wheels.mib(size.total_bytes)} of {wheels.mib(wheels.LIMIT_BYTES)}: {size.fits}; CPU smoke: {smoke_ok}")  # fmt: skip
    return 0 if ok else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plan", action="store_true", help="on a CPU: the steps, the wheels, the size check, the CPU smoke")
    p.add_argument("--no-download", action="store_true", help="--plan without building .whl/ (size check of what is there)")
    p.add_argument("--only", default="", help=f"comma-separated steps to run: {', '.join(s.name for s in STEPS)}")
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu-check-out"), help="default: $OUT, else ./gpu-check-out")
    p.add_argument("--work", type=Path, default=PROJECT_ROOT / "bench" / ".cache" / "gpu-check", help="the steps' own folders")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    command = "bash bench/gpu_check.sh " + " ".join(argv)
    if args.plan:
        return plan(args, command)
    if not _has("nvidia-smi"):
        raise SystemExit("the GPU check needs an NVIDIA GPU; on a CPU run it with --plan")
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in {s.name for s in STEPS}]
    if unknown:
        raise SystemExit(f"unknown step(s) {', '.join(unknown)}; known: {', '.join(s.name for s in STEPS)}")
    steps = tuple(s for s in STEPS if not names or s.name in names)
    print_plan(steps)
    summary = check(steps, args.work, args.out, "cuda", "gpu-check", command)
    print("\n".join(verdicts.markdown_tables({**summary, "checks": [], "estimates": []})))  # the short table, last
    return 0 if all(s["status"] == "ok" for s in summary["steps"][1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
