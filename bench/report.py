"""Turn arm results into ratios (B/A, C/A) and markdown tables; shared by bench/run.py and the docs.

Memory ratios use the figure that limits a real card: CUDA reserved memory on a GPU (what the
allocator holds, hence what runs out), peak RSS on a CPU. Throughput ratios use non-padding
tokens per second of training; for GRPO also generated tokens per second.

Imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from bench.launch import ARM_TITLES


def memory_gb(result: dict[str, Any]) -> float | None:
    reserved = result.get("peak_reserved_gb")
    return reserved if reserved is not None else result.get("peak_rss_gb")


def _ratio(a: float | None, b: float | None) -> float | None:
    return b / a if a and b is not None else None


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per technique, each of B and C against A (only where both finished)."""
    rows = []
    for technique in dict.fromkeys(r["technique"] for r in results):
        by_arm = {r["arm"]: r for r in results if r["technique"] == technique and r.get("status") == "ok"}
        base = by_arm.get("A")
        if base is None:
            continue
        for arm in ("B", "C"):
            other = by_arm.get(arm)
            if other is None:
                continue
            rows.append({
                "technique": technique, "arm": arm, "vs": "A",
                "tokens_per_s": _ratio(base.get("tokens_per_s"), other.get("tokens_per_s")),
                "gen_tokens_per_s": _ratio(base.get("gen_tokens_per_s"), other.get("gen_tokens_per_s")),
                "memory": _ratio(memory_gb(base), memory_gb(other)),
            })  # fmt: skip
    return rows


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _pct(value: float | None) -> str:
    return "N/A" if value is None else f"{100 * value:.1f}%"


def results_table(results: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| technique | arm | status | tokens/s | gen tokens/s | s/step (gen + train) | peak alloc GiB | peak reserved GiB | peak RSS GiB | MFU | MFU gen |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        status = r.get("status", "?")
        if status != "ok":
            reason = str(r.get("reason", "")).splitlines()[0][:90] if r.get("reason") else ""
            lines.append(f"| {r['technique']} | {r['arm']} | {status}: {reason} | | | | | | | | |")
            continue
        step = _num(r.get("step_seconds"), 3)
        if r.get("generation_seconds") is not None:
            step += f" ({_num(r['generation_seconds'], 3)} + {_num(r['training_seconds'], 3)})"
        lines.append(
            f"| {r['technique']} | {r['arm']} | ok | {_num(r.get('tokens_per_s'), 1)} | {_num(r.get('gen_tokens_per_s'), 1)} "
            f"| {step} | {_num(r.get('peak_allocated_gb'))} | {_num(r.get('peak_reserved_gb'))} | {_num(r.get('peak_rss_gb'))} "
            f"| {_pct(r.get('mfu'))} | {_pct(r.get('mfu_generation'))} |"
        )
    return lines


def ratio_table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return ["(no ratios: arm A or the compared arm did not finish)"]
    lines = ["| technique | ratio | tokens/s | gen tokens/s | peak memory |", "|---|---|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row['technique']} | {row['arm']}/{row['vs']} | {_num(row['tokens_per_s'])}x "
                     f"| {_num(row['gen_tokens_per_s'])}{'x' if row['gen_tokens_per_s'] else ''} "
                     f"| {_num(row['memory'])}x |")  # fmt: skip
    return lines


def active_lines(results: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, str] = {}
    for r in results:
        if r.get("status") == "ok" and r["arm"] not in seen:
            active = ", ".join(f"{k}: {v}" for k, v in (r.get("active") or {}).items())
            seen[r["arm"]] = f"- **{r['arm']}** ({ARM_TITLES.get(r['arm'], '')}): {active}"
    return list(seen.values())


def markdown(summary: dict[str, Any]) -> str:
    env = summary.get("environment") or {}
    versions = ", ".join(f"{k} {v}" for k, v in (env.get("versions") or {}).items() if v)
    work = summary.get("workload", {})
    lines = [
        f"### {summary.get('shape')} — {', '.join(summary.get('techniques', []))}",
        "",
        f"- date: {summary.get('date')}; device: {env.get('device', '?')}; {versions}",
        f"- command: `{summary.get('command')}`",
        f"- workload: {', '.join(f'{k}={v}' for k, v in work.items())}",
        "",
        *results_table(summary["results"]),
        "",
        *ratio_table(summary["ratios"]),
        "",
        "What each arm really ran:",
        "",
        *active_lines(summary["results"]),
        "",
    ]
    return "\n".join(lines)
