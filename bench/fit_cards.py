"""What fits on a consumer card: emulate 8/12/16/24 GiB GPUs on a big one and bisect the largest workload.

    python bench/fit_cards.py sft  --shape llama-3.1-8b --cards 8,12,16,24 --arms A,B --out bench/results/fit-sft-8b
    python bench/fit_cards.py grpo --shape qwen2.5-1.5b --cards 8,12,16,24 --arms A,B --gens 4,8,16 \\
        --out bench/results/fit-grpo-1.5b

Each probe is one arm in a fresh process (bench/arm.py) whose CUDA allocator is capped with
torch.cuda.set_per_process_memory_fraction(card / total), training 2 steps at batch 1: it fits if
both steps finish without CUDA running out of memory.
- sft: the longest sequence (a multiple of --granularity, default 256 tokens, from --min-seq-len
  to --max-seq-len) that trains;
- grpo: for each num_generations in --gens, the longest completion (multiple of 64) that trains;
  the table shows generations x completion length.
The cap covers what PyTorch allocates, not the CUDA context (~0.3-0.5 GiB) nor a desktop's own
use of the card, so a real card of that size holds a little less. Needs CUDA.

Writes <out>/fit.json and <out>/fit.md at the end, and <out>/probes.json after every probe (so a
search killed on a deadline keeps what it learnt: bench/gpu_check.py reads it).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.data import Workload, write_dataset
from bench.launch import ArmSpec, cuda_available, run_arms
from bench.shapes import DEFAULT_CACHE, materialize


def bisect_max(fits: Callable[[int], bool], lo: int, hi: int, step: int) -> int | None:
    """The largest multiple of `step` in [lo, hi] for which `fits` is true, assuming fits is monotone
    (true up to some value, false beyond); None if even `lo` does not fit. About log2((hi-lo)/step) probes."""
    if not fits(lo):
        return None
    if fits(hi):
        return hi
    good, bad = lo // step, hi // step  # fits(good * step) is true, fits(bad * step) is false
    while bad - good > 1:
        mid = (good + bad) // 2
        if fits(mid * step):
            good = mid
        else:
            bad = mid
    return good * step


class Prober:
    """Runs one capped arm per probe and remembers every outcome (they go into fit.json)."""

    def __init__(self, args: argparse.Namespace, model_dir: Path) -> None:
        self.args = args
        self.model_dir = model_dir
        self.log: list[dict[str, Any]] = []

    def fits(self, arm: str, card_gb: float, work: Workload) -> bool:
        name = f"{work.technique}-{arm}-{card_gb:g}gb-{work.seq_len}-{work.num_generations}x{work.completion_len}"
        data = write_dataset(work, self.model_dir, self.args.out / "data")
        spec = ArmSpec(arm=arm, shape=self.args.shape, model_dir=str(self.model_dir), data_path=str(data), work=work,
                       scratch_dir=str(self.args.out / "probes" / name), mem_cap_gb=card_gb)  # fmt: skip
        result = run_arms([spec], timeout_s=self.args.timeout)[0]
        ok = result.get("status") == "ok"
        self.log.append({"arm": arm, "card_gb": card_gb, "work": result.get("work"), "status": result.get("status"),
                         "reason": result.get("reason"), "peak_reserved_gb": result.get("peak_reserved_gb")})  # fmt: skip
        (self.args.out / "probes.json").write_text(json.dumps(self.log, indent=2, default=str))
        print(f"  {arm} {card_gb:g} GiB {name}: {'fits' if ok else result.get('status')}", flush=True)
        if result.get("status") == "error":  # not a memory verdict: a bisection on it would be wrong
            raise SystemExit(f"probe {name} failed: {result.get('reason')}")
        return ok


def fit_sft(args: argparse.Namespace, prober: Prober) -> list[dict[str, Any]]:
    rows = []
    for card in args.cards:
        for arm in args.arms:
            def fits(seq_len: int, arm: str = arm, card: float = card) -> bool:
                return prober.fits(arm, card, Workload(technique="sft", seq_len=seq_len, batch=1, steps=2))

            best = bisect_max(fits, args.min_seq_len or args.granularity, args.max_seq_len, args.granularity)
            rows.append({"card_gb": card, "arm": arm, "max_seq_len": best})
    return rows


def fit_grpo(args: argparse.Namespace, prober: Prober) -> list[dict[str, Any]]:
    rows = []
    for card in args.cards:
        for arm in args.arms:
            for gens in args.gens:
                def fits(length: int, arm: str = arm, card: float = card, gens: int = gens) -> bool:
                    work = Workload(technique="grpo", seq_len=64, batch=gens, steps=2, prompt_len=64,
                                    num_generations=gens, completion_len=length)  # fmt: skip
                    return prober.fits(arm, card, work)

                best = bisect_max(fits, 64, args.max_completion_len, 64)
                rows.append({"card_gb": card, "arm": arm, "num_generations": gens, "max_completion_len": best,
                             "product": gens * best if best else None})  # fmt: skip
    return rows


def markdown(mode: str, rows: list[dict[str, Any]], shape: str, command: str) -> str:
    lines = [f"### What fits: {mode} on {shape} (batch 1, 2 steps, emulated cards)", "", f"command: `{command}`", ""]
    if mode == "sft":
        lines += ["| card | arm | longest sequence that trains |", "|---:|---|---:|"]
        lines += [f"| {r['card_gb']:g} GiB | {r['arm']} | {r['max_seq_len'] or 'none'} |" for r in rows]
    else:
        lines += ["| card | arm | generations | longest completion | gens x length |", "|---:|---|---:|---:|---:|"]
        lines += [f"| {r['card_gb']:g} GiB | {r['arm']} | {r['num_generations']} | {r['max_completion_len'] or 'none'} "
                  f"| {r['product'] or '–'} |" for r in rows]  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["sft", "grpo"])
    p.add_argument("--shape", default=None, help="default: llama-3.1-8b for sft, qwen2.5-1.5b for grpo")
    p.add_argument("--cards", default="8,12,16,24", help="card sizes in GiB, comma-separated")
    p.add_argument("--arms", default="A,B", help="comma-separated arms to probe")
    p.add_argument("--gens", default="4,8,16", help="grpo: num_generations values")
    p.add_argument("--granularity", type=int, default=256, help="sft: sequence lengths probed are multiples of this")
    p.add_argument("--min-seq-len", type=int, default=0, help="sft: the lower end of the search (default: --granularity)")
    p.add_argument("--max-seq-len", type=int, default=32768, help="sft: the upper end of the search")
    p.add_argument("--max-completion-len", type=int, default=4096, help="grpo: the upper end of the search")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per probe")
    p.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    args.shape = args.shape or ("llama-3.1-8b" if args.mode == "sft" else "qwen2.5-1.5b")
    args.cards = [float(c) for c in args.cards.split(",")]
    args.arms = [a.strip() for a in args.arms.split(",")]
    args.gens = [int(g) for g in args.gens.split(",")]
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if not cuda_available():
        raise SystemExit("fit_cards.py emulates GPU cards and needs CUDA")
    args.out.mkdir(parents=True, exist_ok=True)
    prober = Prober(args, materialize(args.shape, args.cache_dir))
    rows = fit_sft(args, prober) if args.mode == "sft" else fit_grpo(args, prober)
    command = "python bench/fit_cards.py " + shlex.join(argv)
    summary = {"date": time.strftime("%Y-%m-%d %H:%M"), "command": command, "shape": args.shape, "mode": args.mode,
               "rows": rows, "probes": prober.log}  # fmt: skip
    (args.out / "fit.json").write_text(json.dumps(summary, indent=2, default=str))
    (args.out / "fit.md").write_text(markdown(args.mode, rows, args.shape, command))
    print((args.out / "fit.md").read_text())


if __name__ == "__main__":
    main()
