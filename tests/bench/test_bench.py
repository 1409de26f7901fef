"""The benchmark harness (bench/) runs end to end on the CPU, so it cannot rot between GPU runs.

The smoke run trains the tiny 4-bit model for two steps per arm (A, A0, B; C is skipped on a CPU)
for SFT and GRPO (GRPO's generation and training are timed apart), each arm in its own (forked)
process, and writes results.json/.md; `python bench/run.py --smoke` covers DPO and reward too. The
other tests check the pieces that need no training: the published shapes, the synthetic data's
token lengths, the ratios and the card-fitting bisection.
"""

from __future__ import annotations

import json

import pytest

from bench.data import TextMaker, Workload, rows_for
from bench.fit_cards import bisect_max
from bench.report import ratios
from bench.shapes import TINY_MODEL, _meta_model, config_path, shape_names

PUBLISHED_PARAMS = {  # from each model card, in billions
    "llama-3.1-8b": 8.03, "llama-3.2-1b": 1.24, "qwen2.5-0.5b": 0.494, "qwen2.5-1.5b": 1.54, "qwen3-4b": 4.02,
}  # fmt: skip


@pytest.mark.slow
def test_smoke_runs_every_technique_and_arm(tmp_path):
    from bench.run import main

    # SFT and GRPO only: every technique's arms would take minutes of a CI run's ten.
    summary = main(["--smoke", "--technique", "sft,grpo", "--out", str(tmp_path)])
    by_key = {(r["technique"], r["arm"]): r for r in summary["results"]}
    for technique in ("sft", "grpo"):
        for arm in ("A", "A0", "B"):
            result = by_key[(technique, arm)]
            assert result["status"] == "ok", f"{technique} {arm}: {result.get('reason')}"
            assert result["tokens_per_s"] > 0 and result["timed_steps"] == 1
            assert result["peak_rss_gb"] > 0 and result["mfu"] is None  # no peak FLOPs for a CPU
        assert by_key[(technique, "C")] == {"arm": "C", "technique": technique, "status": "skipped", "reason": "unsloth needs CUDA"}
        assert by_key[(technique, "A")]["active"]["checkpointing"].startswith("on")
        assert by_key[(technique, "A0")]["active"]["checkpointing"] == "off"
        assert by_key[(technique, "B")]["active"]["4bit"].startswith("on")
    grpo = by_key[("grpo", "B")]
    assert grpo["gen_tokens_per_s"] > 0 and grpo["generation_seconds"] > 0 and grpo["training_seconds"] > 0
    assert {(r["technique"], r["arm"]) for r in summary["ratios"]} == {(t, "B") for t in ("sft", "grpo")}
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["environment"]["versions"]["trl"]
    table = (tmp_path / "results.md").read_text()
    assert "| sft | B/A |" in table and "unsloth needs CUDA" in table


@pytest.mark.parametrize("shape", sorted(PUBLISHED_PARAMS))
def test_shapes_have_their_published_sizes(shape):
    assert shape in shape_names()
    model = _meta_model(config_path(shape))
    billions = sum(p.numel() for p in model.parameters()) / 1e9
    assert billions == pytest.approx(PUBLISHED_PARAMS[shape], rel=0.01)


def test_synthetic_rows_have_the_asked_token_lengths():
    maker = TextMaker(TINY_MODEL)
    sft = rows_for(Workload(technique="sft", seq_len=48, batch=1, steps=2), maker)
    assert len(sft) == 4 and all(maker.count(r["text"]) >= 48 for r in sft)
    pairs = rows_for(Workload(technique="dpo", seq_len=64, batch=2, steps=2), maker)
    for row in pairs:
        assert maker.count(row["prompt"]) == 16
        assert maker.count(row["chosen"]) == maker.count(row["rejected"]) == 64 - 16 - 8
    prompts = rows_for(Workload(technique="grpo", seq_len=64, batch=4, steps=3, prompt_len=12), maker)
    assert len(prompts) == 5 and all(maker.count(r["prompt"]) == 12 for r in prompts)


def test_ratios_compare_b_and_c_with_a():
    results = [
        {"technique": "sft", "arm": "A", "status": "ok", "tokens_per_s": 100.0, "peak_reserved_gb": 10.0},
        {"technique": "sft", "arm": "B", "status": "ok", "tokens_per_s": 150.0, "peak_reserved_gb": 6.0},
        {"technique": "sft", "arm": "C", "status": "skipped", "reason": "unsloth needs CUDA"},
    ]
    [row] = ratios(results)
    assert row["arm"] == "B" and row["tokens_per_s"] == pytest.approx(1.5) and row["memory"] == pytest.approx(0.6)


@pytest.mark.parametrize("limit", [0, 100, 255, 256, 1000, 4096, 5000])
def test_bisection_finds_the_largest_fitting_multiple(limit):
    probes: list[int] = []

    def fits(n: int) -> bool:
        probes.append(n)
        return n <= limit

    best = bisect_max(fits, 256, 4096, 256)
    expected = None if limit < 256 else min(4096, limit // 256 * 256)
    assert best == expected
    assert len(probes) <= 6 and all(p % 256 == 0 for p in probes)
