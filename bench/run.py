"""Side-by-side benchmark: the TRL-docs QLoRA script (A, A0) against smoltrain (B, C), each arm in a fresh process.

    python bench/run.py --shape llama-3.2-1b --technique sft --arms A,A0,B,C --seq-len 2048 --steps 10 \\
        --out bench/results/llama-3.2-1b-sft-2048
    python bench/run.py --shape qwen2.5-1.5b --technique grpo --num-generations 8 --completion-len 512 \\
        --steps 6 --out bench/results/qwen2.5-1.5b-grpo
    python bench/run.py --smoke --out /tmp/bench-smoke       # CPU: tiny model, every technique, seconds

Builds (once, cached under bench/.cache) a random-weight model of the shape (bench/shapes.py),
writes one synthetic dataset per technique (bench/data.py), runs each arm in its own process
(bench/launch.py, bench/arm.py) and writes <out>/results.json and <out>/results.md (rewritten
after each arm, so a run killed on a deadline keeps the arms that finished): tokens/s,
GRPO generation and training separately, peak memory, MFU, and the ratios B/A and C/A.
The first step of each arm is a warm-up and is not timed; model loading is never timed.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data import TECHNIQUES, Workload, write_dataset
from bench.launch import ARMS, ArmSpec, cuda_available, run_arms, skip_reason
from bench.report import markdown, ratios
from bench.shapes import DEFAULT_CACHE, materialize, shape_names

# Tiny on purpose: the smoke checks the harness end to end on a CPU, not the speed.
SMOKE = {"shape": "tiny", "technique": "all", "arms": "A,A0,B,C", "seq_len": 32, "batch": 1, "steps": 2,
         "num_generations": 2, "completion_len": 4, "prompt_len": 8}  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shape", default="llama-3.2-1b", help=f"one of: {', '.join(shape_names())}")
    p.add_argument("--technique", default="sft", help=f"comma-separated: {', '.join(TECHNIQUES)}, or all")
    p.add_argument("--arms", default="A,A0,B,C", help="comma-separated: A (TRL docs), A0 (no checkpointing), B (smoltrain), C (+Unsloth)")
    p.add_argument("--seq-len", type=int, default=2048, help="tokens per sequence (sft, dpo, reward)")
    p.add_argument("--batch", type=int, default=1, help="sequences per step (sft, dpo and reward: pairs; grpo: num-generations)")
    p.add_argument("--steps", type=int, default=10, help="optimizer steps per arm; the first is an untimed warm-up")
    p.add_argument("--num-generations", type=int, default=8, help="grpo: completions per prompt (= per step)")
    p.add_argument("--completion-len", type=int, default=256, help="grpo: max_completion_length")
    p.add_argument("--prompt-len", type=int, default=0, help="grpo prompt tokens (default 64); dpo/reward (default seq-len/4)")
    p.add_argument("--mem-cap-gb", type=float, default=None, help="emulate a card of this many GiB")
    p.add_argument("--mode", choices=["spawn", "fork"], default=None, help="how arms start (default: spawn; fork for --smoke on CPU)")
    p.add_argument("--timeout", type=float, default=3600, help="seconds per arm")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="where random-weight models are kept")
    p.add_argument("--out", type=Path, required=True, help="folder for results.json, results.md and each arm's log")
    p.add_argument("--smoke", action="store_true", help=f"the CPU smoke run: {SMOKE}")
    if "--smoke" in (argv or []):
        p.set_defaults(**SMOKE)  # the smoke sizes, unless given explicitly
    return p.parse_args(argv)


def workloads(args: argparse.Namespace) -> list[Workload]:
    names = TECHNIQUES if args.technique == "all" else tuple(t.strip() for t in args.technique.split(","))
    unknown = [t for t in names if t not in TECHNIQUES]
    if unknown:
        raise SystemExit(f"unknown technique(s) {', '.join(unknown)}; known: {', '.join(TECHNIQUES)}, all")
    if args.steps < 2:
        raise SystemExit("--steps must be at least 2: the first step is an untimed warm-up")
    out = []
    for technique in names:
        grpo = technique == "grpo"
        out.append(Workload(
            technique=technique, seq_len=args.seq_len, steps=args.steps,
            batch=args.num_generations if grpo else args.batch,
            prompt_len=args.prompt_len or (64 if grpo else 0),
            num_generations=args.num_generations, completion_len=args.completion_len,
        ))  # fmt: skip
    return out


def benchmark(args: argparse.Namespace, command: str) -> dict[str, Any]:
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in arms if a not in ARMS]
    if bad:
        raise SystemExit(f"unknown arm(s) {', '.join(bad)}; known: {', '.join(ARMS)}")
    has_cuda = cuda_available()
    mode = args.mode or ("fork" if args.smoke and not has_cuda else "spawn")
    if mode == "fork" and has_cuda:
        raise SystemExit("--mode fork is for CPU runs only: a CUDA context does not survive fork")
    model_dir = materialize(args.shape, args.cache_dir)
    works = workloads(args)
    first = works[0]
    summary: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "shape": args.shape,
        "techniques": [w.technique for w in works],
        "workload": {"seq_len": first.seq_len, "batch": args.batch, "steps": first.steps,
                     "num_generations": first.num_generations, "completion_len": first.completion_len,
                     "mem_cap_gb": args.mem_cap_gb, "mode": mode},  # fmt: skip
        "environment": {},
        "results": [],
        "ratios": [],
    }
    results: list[dict[str, Any]] = summary["results"]
    for work in works:
        data = write_dataset(work, model_dir, args.out / "data")
        specs, skipped = [], {}
        for arm in arms:
            reason = skip_reason(arm, work.technique, has_cuda)
            if reason:
                skipped[arm] = {"arm": arm, "technique": work.technique, "status": "skipped", "reason": reason}
                continue
            specs.append(ArmSpec(arm=arm, shape=args.shape, model_dir=str(model_dir), data_path=str(data), work=work,
                                 scratch_dir=str(args.out / "arms" / f"{work.technique}-{arm}"), mem_cap_gb=args.mem_cap_gb))  # fmt: skip
        # Fork mode imports once for all the arms; spawned arms run one by one, and the results so far
        # are saved after each, so a harness that kills this run on a deadline keeps the finished arms.
        batches = [specs] if mode == "fork" else [[spec] for spec in specs]
        ran: dict[str, dict[str, Any]] = {}
        for batch in batches:
            ran.update({r["arm"]: r for r in (run_arms(batch, mode=mode, timeout_s=args.timeout) if batch else [])})
            save(args.out, summary, results + [ran[a] for a in arms if a in ran])
        results += [ran.get(arm) or skipped[arm] for arm in arms]
        for r in results[-len(arms):]:
            print(f"{work.technique:>6} {r['arm']:>2}: {r['status']}" + (f" ({r.get('reason')})" if r.get("reason") else ""), flush=True)
        save(args.out, summary, results)
    return summary


def save(out: Path, summary: dict[str, Any], results: list[dict[str, Any]]) -> None:
    """Write results.json and results.md for the results so far (the summary keeps the last list given)."""
    summary["results"] = results
    summary["environment"] = next((r["environment"] for r in results if r.get("environment")), {})
    summary["ratios"] = ratios(results)
    (out / "results.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "results.md").write_text(markdown(summary))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = benchmark(args, "python bench/run.py " + shlex.join(argv))
    print(f"wrote {args.out / 'results.json'} and {args.out / 'results.md'}")
    return summary


if __name__ == "__main__":
    main()
