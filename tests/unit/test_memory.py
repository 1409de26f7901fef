"""The memory model and fit-to-GPU, without torch: figures that agree with published ones, verdicts,
proposals that really fit, and user errors that name the model and say what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smoltrain.cli import main
from smoltrain.config.load import load_config
from smoltrain.errors import FitError, ModelError
from smoltrain.memory import estimate, fit, read_model_config

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bench" / "model_configs"
LLAMA_8B = CONFIGS / "llama-3.1-8b" / "config.json"
SFT_8B = ROOT / "presets" / "sft-llama3.1-8b.toml"
GRPO = ROOT / "presets" / "grpo-qwen2.5-1.5b-gsm8k.toml"


def rows(est) -> dict[str, float]:
    return dict(est.rows)


def row(est, prefix: str) -> float:
    return next(gib for name, gib in est.rows if name.startswith(prefix))


def test_package_imports_no_torch_even_when_estimating():
    code = (
        "import sys, smoltrain.memory as m, smoltrain.cli\n"
        "from smoltrain.config.load import load_config\n"
        f"m.estimate(load_config({str(SFT_8B)!r}), 12, model_config={str(LLAMA_8B)!r})\n"
        "print(sorted(x for x in ('torch', 'transformers', 'bitsandbytes') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_llama_8b_qlora_2048_tokens_matches_published_figures():
    # Commonly 7-9 GiB for Llama-3.1-8B QLoRA, batch 1 x 2048, checkpointing (torchtune: 7.4 GiB on a 4090).
    cfg = load_config(SFT_8B, ["train.micro_batch_size=1"])
    est = estimate(cfg, 24, model_config=LLAMA_8B)
    assert 7.0 <= est.total_gb <= 9.0
    assert 3.2 < row(est, "base weights: decoder layers (4-bit") < 3.5  # 6.98B weights at ~4.13 bits
    assert row(est, "LM head (bf16, untied") == pytest.approx(128256 * 4096 * 2 / 2**30)
    assert est.total_gb == pytest.approx(sum(rows(est).values()))


def test_verdict_and_table():
    cfg = load_config(SFT_8B)
    fits = estimate(cfg, 24, model_config=LLAMA_8B)
    assert fits.fits is True and fits.verdict.startswith("fits with")
    tight = estimate(cfg, 6, model_config=LLAMA_8B)
    assert tight.fits is False and tight.verdict == f"does not fit: needs {tight.total_gb:.1f} GiB of 6"
    assert estimate(cfg, None, model_config=LLAMA_8B).fits is None
    table = fits.render_table()
    assert "LoRA r=16" in table and "verdict: fits with" in table and "CUDA context" in table


def test_checkpointing_and_batch_move_activations_the_right_way():
    on = estimate(load_config(SFT_8B), None, model_config=LLAMA_8B)
    off = estimate(load_config(SFT_8B, ["train.gradient_checkpointing=false"]), None, model_config=LLAMA_8B)
    half = estimate(load_config(SFT_8B, ["train.micro_batch_size=1"]), None, model_config=LLAMA_8B)
    assert off.total_gb > on.total_gb + 10
    assert row(half, "activations") == pytest.approx(row(on, "activations") / 2, rel=0.01)


def test_techniques_have_their_own_components():
    qwen = CONFIGS / "qwen3-0.6b" / "config.json"
    base = ["model.name_or_path=Qwen/Qwen3-0.6B", "train.micro_batch_size=1"]
    sft = estimate(load_config(ROOT / "presets" / "sft-qwen3-0.6b.toml", base), None, model_config=qwen)
    dpo = estimate(load_config(ROOT / "presets" / "dpo-qwen3-0.6b.toml", base), None, model_config=qwen)
    reward = estimate(load_config(ROOT / "presets" / "reward-qwen3-0.6b.toml", base), None, model_config=qwen)
    sft_len = load_config(ROOT / "presets" / "sft-qwen3-0.6b.toml", base).train.max_length
    # DPO runs chosen and rejected together: twice the sequences of SFT at the same length.
    dpo_per_token = row(dpo, "activations") / (2 * 1024)
    assert dpo_per_token == pytest.approx(row(sft, "activations") / sft_len, rel=0.02)
    assert any("DPO reference pass" in name for name, _ in dpo.rows + dpo.other_rows)
    assert "reward head (fp32, trained in full)" in rows(reward)
    assert not any(name.startswith("LM head") for name in rows(reward))


def test_kto_has_one_answer_a_row_a_kl_batch_and_a_reference_pass():
    qwen = CONFIGS / "qwen3-0.6b" / "config.json"
    kto_preset, dpo_preset = ROOT / "presets" / "kto-qwen3-0.6b.toml", ROOT / "presets" / "dpo-qwen3-0.6b.toml"
    same = ["train.micro_batch_size=2", "train.max_length=1024"]
    kto = estimate(load_config(kto_preset, same), None, model_config=qwen)
    dpo = estimate(load_config(dpo_preset, same), None, model_config=qwen)
    # DPO trains chosen and rejected of each pair; KTO one answer a row: half the saved activations.
    assert row(kto, "activations") == pytest.approx(row(dpo, "activations") / 2, rel=0.02)
    names = [name for name, _ in kto.rows + kto.other_rows]
    assert any("KTO KL batch" in n for n in names) and any("KTO reference pass" in n for n in names)


def test_grpo_generation_grows_with_generations_and_completion_length():
    qwen = CONFIGS / "qwen2.5-1.5b" / "config.json"
    small = estimate(load_config(GRPO), None, model_config=qwen)
    big = estimate(load_config(GRPO, ["train.grad_accum=32", "grpo.max_completion_length=2048", "train.max_length=2560"]),
                   None, model_config=qwen)  # fmt: skip
    kv = next(gib for name, gib in small.rows + small.other_rows if "KV cache" in name)
    assert "KV cache (32 prompts x 8 = 256 seqs x 2560 tokens)" in big.render_table()
    assert big.total_gb > small.total_gb and next(g for n, g in big.rows if "KV cache" in n) > 30 * kv


def test_fit_keeps_effective_batch_and_lands_under_the_margin():
    proposal = fit(load_config(SFT_8B, ["train.micro_batch_size=16", "train.grad_accum=1"]), 12, model_config=LLAMA_8B)
    o = proposal.overrides
    assert o["train.micro_batch_size"] * o.get("train.grad_accum", 1) == 16
    assert proposal.estimate.total_gb <= 12 * 0.9 < proposal.before.total_gb
    flags = proposal.set_flags()
    applied = load_config(SFT_8B, ["train.micro_batch_size=16", "train.grad_accum=1"] + [f.split(" ", 1)[1] for f in flags])
    assert estimate(applied, 12, model_config=LLAMA_8B).total_gb == pytest.approx(proposal.estimate.total_gb)
    assert "--set train.micro_batch_size=" in proposal.explain()


def test_fit_turns_on_checkpointing_before_shortening_sequences():
    proposal = fit(load_config(SFT_8B, ["train.gradient_checkpointing=false"]), 12, model_config=LLAMA_8B)
    assert proposal.overrides.get("train.gradient_checkpointing") is True
    assert "train.max_length" not in proposal.overrides


def test_fit_grpo_keeps_groups_whole():
    qwen = CONFIGS / "qwen2.5-1.5b" / "config.json"
    cfg = load_config(GRPO, ["grpo.max_completion_length=4096", "train.max_length=4608", "train.grad_accum=8"])
    proposal = fit(cfg, 8, model_config=qwen)
    gens = proposal.overrides.get("grpo.num_generations", 8)
    mb = proposal.overrides.get("train.micro_batch_size", 8)
    ga = proposal.overrides.get("train.grad_accum", 8)
    assert (mb * ga) % gens == 0 and proposal.estimate.total_gb <= 8 * 0.9


def test_fit_pipeline_names_stages_and_raises_when_nothing_fits():
    demo = load_config(ROOT / "presets" / "demo.toml", ["stages[0].train.micro_batch_size=1"])
    proposal = fit(demo, 4)
    assert proposal.estimate.stage and all(key.startswith("stages[") for key in proposal.overrides)
    with pytest.raises(FitError) as err:
        fit(load_config(SFT_8B), 4, model_config=LLAMA_8B)
    assert "Llama-3.1-8B" in err.value.message and "4 GiB" in err.value.message and err.value.hint


def test_unknown_model_is_a_user_error_naming_it(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as err:
        read_model_config("nobody/not-a-model-xyz")
    assert "nobody/not-a-model-xyz" in err.value.message and "--model-config" in err.value.hint
    assert read_model_config(str(ROOT / "assets" / "tiny-llama"))["model_type"] == "llama"


def test_cli_estimate_and_fit(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = [str(SFT_8B), "--model-config", str(LLAMA_8B)]
    assert main(["estimate", *args, "--gpu-mem", "24"]) == 0
    assert "verdict: fits with" in capsys.readouterr().out
    assert main(["estimate", *args, "--gpu-mem", "6"]) == 2  # does not fit
    assert main(["fit", *args, "--gpu-mem", "10"]) == 0
    assert "--set train." in capsys.readouterr().out
    assert main(["estimate", str(SFT_8B), "--gpu-mem", "12"]) == 2
    err = capsys.readouterr().err
    assert "meta-llama/Llama-3.1-8B-Instruct" in err and "--model-config" in err and "Traceback" not in err


def test_evaluation_memory_is_the_4bit_model_plus_the_batch_it_answers():
    from smoltrain.memory.estimate import estimate_eval, load_shape

    cfg = load_config(SFT_8B)
    shape = load_shape(cfg, LLAMA_8B)
    small = estimate_eval(cfg, shape, batch_size=4, prompt_tokens=512, new_tokens=256, gpu_mem_gb=12)
    big = estimate_eval(cfg, shape, batch_size=64, prompt_tokens=1024, new_tokens=512, gpu_mem_gb=12)
    # An 8B in NF4 is ~5.5 GiB of weights; four answers of 768 tokens add little: it fits a 12 GB card.
    assert 5.0 < small.total_gb < 9.0 and small.fits
    # 64 sequences of 1536 tokens: the KV cache alone is 64 x 1536 x 32 layers x 2 x 8 x 128 x 2 B = 12 GiB.
    kv = next(gib for name, gib in big.rows + big.other_rows if "KV cache" in name)
    assert 11.5 < kv < 12.5 and big.fits is False
    assert "evaluation" in big.summary and "batch 64" in big.summary
