"""Read one GPU-check step's results and say what they mean: checks, figures against targets, estimates.

Used by bench/gpu_check.py after every step (and by its CPU smoke in --plan). Three kinds of output:
- checks: for every smoltrain (arm B) run, is each technique really active? Both what the run's
  run_started event says (`active`: device, dtype, "4bit", "liger", "checkpointing") and what the
  live trainer showed (`observed`, bench/observe.py: Linear4bit layers, Liger modules and RoPE,
  checkpointed layers with use_reentrant=False, bf16 autocast in the training forwards, the
  optimizer's class, bits and paging). On CUDA all five must be on; on a CPU the expected state
  is 4-bit and non-reentrant checkpointing with Liger, bf16 and 8-bit AdamW off (smoltrain's CPU path);
- figures: the targets of docs/benchmarks.md, each with what was measured and a verdict;
- estimates: every arm-B run's measured peak (CUDA reserved + smoltrain's 0.6 GiB for the CUDA
  context, which torch does not see) against `smoltrain estimate` for the same RunConfig, at the
  same card size. docs/memory.md sets no accuracy target; a ratio above 1 means the estimate is low,
  which is what would make `smoltrain fit` propose a shape that runs out of memory. The training
  steps' own peak is shown beside the whole process's: smoltrain's preflight pass runs before the
  Trainer turns checkpointing on, so the two can differ by the un-checkpointed activations.

Imports the stdlib, pydantic (RunConfig) and smoltrain.memory; never torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.launch import ArmSpec

CUDA_CONTEXT_GIB = 0.6  # smoltrain.memory.estimate's own figure for what torch.cuda cannot see
TECHNIQUE_FACTS = ("4-bit", "Liger", "bf16", "paged 8-bit AdamW", "non-reentrant checkpointing")


def load_results(out: Path) -> list[dict[str, Any]]:
    path = out / "results.json"
    return json.loads(path.read_text())["results"] if path.exists() else []


def facts(result: dict[str, Any], device: str) -> dict[str, tuple[bool, str]]:
    """Each technique fact -> (as expected on this device, what was seen)."""
    active, seen = result.get("active") or {}, result.get("observed") or {}
    cuda = device == "cuda"
    four = seen.get("4bit", {})
    liger = seen.get("liger", {})
    ckpt = seen.get("checkpointing", {})
    opt = seen.get("optimizer", {})
    autocast = seen.get("autocast", {})
    bf16_forwards = sum(n for state, n in autocast.items() if state.startswith("bfloat16 autocast (cuda)"))
    liger_rope = str(liger.get("rope_from") or "").startswith("liger_kernel")
    liger_seen = bool(liger.get("modules")) or liger_rope
    eight_bit = str(opt.get("class") or "").startswith("bitsandbytes.optim") and opt.get("optim_bits") == 8
    uint8 = opt.get("state_dtypes", {}).get("uint8", 0)
    out = {
        "4-bit": (str(active.get("4bit", "")).startswith("on") and four.get("layers", 0) > 0
                  and (not cuda or str(four.get("device", "")).startswith("cuda")),
                  f"{active.get('4bit')}; {four.get('layers', 0)} Linear4bit layers ({four.get('quant_type')}, "
                  f"compute {four.get('compute_dtype')}) on {four.get('device')}"),
        "Liger": ((str(active.get("liger", "")).startswith("on") and bool(liger.get("modules")) and liger_rope)
                  if cuda else not liger_seen,
                  f"{active.get('liger')}; modules {liger.get('modules') or 'none'}, RoPE from {liger.get('rope_from')}"),
        "bf16": ((active.get("dtype") == "bfloat16" and bf16_forwards > 0) if cuda else bf16_forwards == 0,
                 f"dtype {active.get('dtype')}; forwards by autocast state {autocast or 'none seen'}"),
        "paged 8-bit AdamW": ((eight_bit and bool(opt.get("is_paged"))) if cuda else not eight_bit,
                              f"{opt.get('class')} (bits {opt.get('optim_bits')}, paged {opt.get('is_paged')}); "
                              f"{opt.get('states', 0)} states: {opt.get('state_dtypes')}, {opt.get('paged_states', 0)} "
                              f"paged{'' if uint8 or not cuda else ' (no uint8 state: every tensor under 4096 weights)'}"),
        "non-reentrant checkpointing": (active.get("checkpointing") == "on (non-reentrant)" and ckpt.get("layers", 0) > 0
                                        and ckpt.get("use_reentrant") is False,
                                        f"{active.get('checkpointing')}; {ckpt.get('layers', 0)} layers, "
                                        f"use_reentrant={ckpt.get('use_reentrant')}"),
    }  # fmt: skip
    if result.get("status") != "ok":
        return {name: (False, f"run {result.get('status')}: {str(result.get('reason', ''))[:200]}") for name in TECHNIQUE_FACTS}
    if active.get("device") != device:
        return {name: (False, f"ran on {active.get('device')}, expected {device}") for name in TECHNIQUE_FACTS}
    return out


def check_rows(step: str, results: list[dict[str, Any]], device: str) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        if r.get("arm") != "B":
            continue
        found = facts(r, device)
        rows.append({"step": step, "run": f"{r.get('shape', '?')} {r['technique']}", "ok": all(ok for ok, _ in found.values()),
                     "facts": {name: {"ok": ok, "seen": seen} for name, (ok, seen) in found.items()}})  # fmt: skip
    return rows


def _ratio(results: list[dict[str, Any]], technique: str, arm: str, key: str) -> tuple[float | None, str]:
    by_arm = {r["arm"]: r for r in results if r["technique"] == technique}
    a, other = by_arm.get("A"), by_arm.get(arm)
    for name, r in (("A", a), (arm, other)):
        if r is None:
            return None, f"{name} did not run (step cut off?)"
        if r.get("status") != "ok":
            return None, f"{name} {r.get('status')}: {str(r.get('reason', '')).splitlines()[0][:120] if r.get('reason') else ''}"
    assert a is not None and other is not None
    av, bv = a.get(key), other.get(key)
    if not av or bv is None:
        return None, f"no {key}"
    return bv / av, f"{arm} {bv:,.2f} / A {av:,.2f}"


def _figure(figure: str, target: str, value: float | None, shown: str, met: bool | None) -> dict[str, Any]:
    verdict = "not measured" if value is None else ("met" if met else "missed")
    return {"figure": figure, "target": target, "measured": shown, "verdict": verdict}


def sft_figures(results: list[dict[str, Any]], label: str) -> list[dict[str, Any]]:
    speed, speed_how = _ratio(results, "sft", "B", "tokens_per_s")
    mem, mem_how = _ratio(results, "sft", "B", "peak_reserved_gb")
    train_mem, _ = _ratio(results, "sft", "B", "train_peak_reserved_gb")  # without loading and the preflight
    if mem and train_mem:
        mem_how += f" GiB; training steps alone {train_mem:.2f}x"
    b = next((r for r in results if r["arm"] == "B" and r.get("status") == "ok"), None)
    mfu = b.get("mfu") if b else None
    c_speed, c_how = _ratio(results, "sft", "C", "tokens_per_s")
    c = next((r for r in results if r["arm"] == "C"), None)
    if c is not None and c.get("status") == "skipped":
        c_how = f"C skipped: {c.get('reason')}"
    return [
        _figure(f"{label}: B/A tokens/s", ">= 1.3x", speed, f"{speed:.2f}x ({speed_how})" if speed else speed_how,
                speed is not None and speed >= 1.3),
        _figure(f"{label}: B/A peak reserved", "<= 0.7x", mem, f"{mem:.2f}x ({mem_how})" if mem else mem_how,
                mem is not None and mem <= 0.7),
        _figure(f"{label}: B MFU", ">= 40%", mfu, f"{100 * mfu:.1f}%" if mfu else "no MFU (B did not finish)",
                mfu is not None and mfu >= 0.4),
        _figure(f"{label}: C/A tokens/s (Unsloth)", "(reported, no target)", c_speed,
                f"{c_speed:.2f}x ({c_how})" if c_speed else c_how, True),
    ]  # fmt: skip


def grpo_figures(results: list[dict[str, Any]], label: str, card_gb: float) -> list[dict[str, Any]]:
    b = next((r for r in results if r["arm"] == "B"), None)
    if b is None:
        return [_figure(label, f"trains inside {card_gb:g} GiB", None, "B did not run (step cut off?)", None)]
    if b.get("status") != "ok":
        shown = f"{b.get('status')}: {str(b.get('reason', '')).splitlines()[0][:160] if b.get('reason') else ''}"
        return [_figure(label, f"trains inside {card_gb:g} GiB", 0.0, shown, False)]
    shown = (f"trained; peak reserved {b.get('peak_reserved_gb') or 0:.2f} GiB, {b.get('step_seconds') or 0:.1f} s/step "
             f"({b.get('generation_seconds') or 0:.1f} generating), {b.get('gen_tokens_per_s') or 0:,.0f} generated tokens/s")
    return [_figure(label, f"trains inside {card_gb:g} GiB", 1.0, shown, True)]


def fit_figures(probes: list[dict[str, Any]], label: str, target: int) -> list[dict[str, Any]]:
    fits = sorted(p["work"]["seq_len"] for p in probes if p.get("status") == "ok" and p.get("work"))
    fails = sorted(p["work"]["seq_len"] for p in probes if p.get("status") == "oom" and p.get("work"))
    if not fits and not fails:
        return [_figure(label, f">= {target}", None, "no probe finished", None)]
    longest = fits[-1] if fits else None
    shown = f"{longest or 'none'} trains" + (f"; {fails[0]} runs out of memory" if fails else "; nothing failed")
    first_fail = next((p for p in probes if p.get("status") == "oom" and p["work"]["seq_len"] == fails[0]), None) if fails else None
    if first_fail and first_fail.get("reason"):  # where: loading, smoltrain's preflight pass, or a training step
        shown += f" ({str(first_fail['reason'])[:140]})"
    shown += f" ({len(probes)} probes)"
    met = longest is not None and longest >= target
    return [_figure(label, f">= {target} tokens", float(longest or 0), shown, met)]


def estimate_rows(step: str, out: Path) -> list[dict[str, Any]]:
    """Every arm-B run under `out`: its measured CUDA peak (None on a CPU) against smoltrain's estimate of it."""
    from bench.arms import smoltrain_config
    from smoltrain.memory import estimate

    rows: list[dict[str, Any]] = []
    for spec_path in sorted(out.rglob("spec.json")):
        result_path = spec_path.parent / "result.json"
        if not result_path.exists():
            continue
        spec, result = ArmSpec.load(spec_path), json.loads(result_path.read_text())
        if spec.arm != "B":
            continue
        reserved = result.get("peak_reserved_gb")
        try:
            est = estimate(smoltrain_config(spec, "hf"), gpu_mem_gb=spec.mem_cap_gb)
        except Exception as exc:  # noqa: BLE001 - a failing estimate is a finding, not a crash of the check
            rows.append({"step": step, "run": spec_path.parent.name, "error": f"{type(exc).__name__}: {exc}"})
            continue
        measured = reserved + CUDA_CONTEXT_GIB if reserved is not None else None
        train = result.get("train_peak_reserved_gb")
        rows.append({
            "step": step, "run": f"{spec.shape} {spec.work.technique} {spec.work.seq_len} tokens"
            + (f", {spec.work.num_generations}x{spec.work.completion_len}" if spec.work.technique == "grpo" else ""),
            "card_gb": spec.mem_cap_gb, "status": result.get("status"), "estimate_gb": est.total_gb,
            "estimate_fits": est.fits, "peak_reserved_gb": reserved, "peak_allocated_gb": result.get("peak_allocated_gb"),
            "measured_gb": measured, "ratio": measured / est.total_gb if measured is not None else None,
            "train_measured_gb": train + CUDA_CONTEXT_GIB if train is not None else None,
        })  # fmt: skip
    return rows


def estimate_figure(rows: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [r["ratio"] for r in rows if r.get("ratio") is not None]
    if not ratios:
        return _figure("memory model: measured / estimate", "<= 1 (estimate not low)", None, f"{len(rows)} runs, no CUDA peak", None)
    low = sum(r > 1.0 for r in ratios)
    shown = f"{min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} runs" + (f"; estimate low on {low}" if low else "")
    return _figure("memory model: measured / estimate", "<= 1 (estimate not low)", max(ratios), shown, low == 0)


def _cell(value: Any, fmt: str = "{:.2f}") -> str:
    return "–" if value is None else fmt.format(value)


def markdown_tables(summary: dict[str, Any]) -> list[str]:
    """Figures, steps, really-active checks and estimates, as markdown lines."""
    figures = summary["figures"] + ([summary["memory_figure"]] if summary.get("memory_figure") else [])
    lines = ["| figure | target | measured | verdict |", "|---|---|---|---|"]
    lines += [f"| {f['figure']} | {f['target']} | {f['measured']} | {f['verdict']} |" for f in figures]
    lines += ["", "| step | budget s | used s | status |", "|---|---:|---:|---|"]
    lines += [f"| {s['name']} | {s['budget_s']} | {s.get('seconds', 0):.0f} | {s['status']} |" for s in summary["steps"]]
    checks = summary.get("checks", [])
    if checks:
        lines += ["", f"| smoltrain run (arm B): as expected? | {' | '.join(TECHNIQUE_FACTS)} |", "|---|" + "---|" * len(TECHNIQUE_FACTS)]
        for c in checks:
            lines.append(f"| {c['run']} | " + " | ".join("yes" if c["facts"][n]["ok"] else "**NO**" for n in TECHNIQUE_FACTS) + " |")
        misses = [(c["run"], n, c["facts"][n]["seen"]) for c in checks for n in TECHNIQUE_FACTS if not c["facts"][n]["ok"]]
        lines += ([""] if misses else []) + [f"- {run}, {name}: {seen}" for run, name, seen in misses[:20]]
    estimates = summary.get("estimates", [])
    if estimates:
        lines += ["", "| run (arm B) | card GiB | status | estimate GiB | measured GiB (reserved + 0.6) | measured / estimate "
                  "| training steps alone GiB (+ 0.6) |", "|---|---:|---|---:|---:|---:|---:|"]  # fmt: skip
        for e in estimates:
            if "error" in e:
                lines.append(f"| {e['run']} | | estimate failed: {e['error'][:100]} | | | | |")
                continue
            lines.append(f"| {e['run']} | {_cell(e['card_gb'], '{:g}')} | {e['status']} | {e['estimate_gb']:.2f} "
                         f"| {_cell(e['measured_gb'])} | {_cell(e['ratio'])} | {_cell(e.get('train_measured_gb'))} |")  # fmt: skip
    return lines
