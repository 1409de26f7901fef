"""The memory model on more than one GPU: per-GPU figures under DDP, FSDP and DeepSpeed ZeRO, auto's
choice, the CLI's --gpus, and fit keeping the effective batch (micro_batch_size x grad_accum x gpus)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smoltrain.cli import main
from smoltrain.config.load import load_config
from smoltrain.memory import estimate, fit, resolve_strategy

ROOT = Path(__file__).resolve().parents[2]
LLAMA_8B = ROOT / "bench" / "model_configs" / "llama-3.1-8b" / "config.json"
QWEN_1_5B = ROOT / "bench" / "model_configs" / "qwen2.5-1.5b" / "config.json"
SFT_8B = ROOT / "presets" / "sft-llama3.1-8b.toml"
GRPO = ROOT / "presets" / "grpo-qwen2.5-1.5b-gsm8k.toml"
DECODER = "base weights: decoder layers"


def on(gpus: int, strategy: str = "auto", *more: str, gpu_mem: float | None = 12):
    cfg = load_config(SFT_8B, [f"distributed.gpus={gpus}", f'distributed.strategy="{strategy}"', *more])
    return estimate(cfg, gpu_mem, model_config=LLAMA_8B)


def row(est, prefix: str) -> float:
    return next(gib for name, gib in est.rows if name.startswith(prefix))


def rows(est, part: str) -> list[float]:
    return [gib for name, gib in est.rows if part in name]


def test_one_gpu_is_the_single_estimate_whatever_the_strategy():
    single = estimate(load_config(SFT_8B), 12, model_config=LLAMA_8B)
    for strategy in ("auto", "ddp", "fsdp", "deepspeed-zero3"):
        one = on(1, strategy)
        assert one.rows == single.rows and one.strategy == "single" and "per GPU" not in one.render_table()


@pytest.mark.parametrize("gpus", [2, 4])
def test_fsdp_shards_weights_and_trainables_but_not_activations(gpus: int):
    single, sharded = on(1), on(gpus, "fsdp")
    # The packed 4-bit weights are split N ways; their absmax constants stay whole on every GPU (~3%).
    assert row(sharded, DECODER) == pytest.approx(row(single, DECODER) / gpus, rel=0.05)
    assert row(sharded, "embeddings") == pytest.approx(row(single, "embeddings") / gpus)
    assert row(sharded, "LoRA r=16") == pytest.approx(row(single, "LoRA r=16") / gpus)
    assert row(sharded, "activations") == row(single, "activations")
    # What FSDP gathers whole: the root unit (embeddings + head) and two decoder layers.
    assert row(sharded, "FSDP root unit") == pytest.approx(row(single, "embeddings") + row(single, "LM head"), rel=0.01)
    layer = row(single, DECODER) / 32
    assert 2 * layer < row(sharded, "FSDP 2 decoder layers") < 2.2 * layer
    assert sharded.total_gb < single.total_gb and sharded.strategy == "fsdp" and sharded.gpus == gpus


def test_ddp_holds_everything_plus_a_copy_of_the_gradients():
    single, ddp = on(1), on(2, "ddp")
    assert ddp.total_gb >= single.total_gb
    lora_params = 41.9e6  # Llama-3.1-8B at r=16 on all linear layers, fp32 grads
    assert row(ddp, "DDP gradient buckets") == pytest.approx(lora_params * 4 / 2**30, rel=0.01)
    assert ddp.total_gb == pytest.approx(single.total_gb + row(ddp, "DDP gradient buckets"))


def test_deepspeed_zero2_keeps_weights_whole_and_zero3_shards_them():
    single, zero2, zero3 = on(1), on(2, "deepspeed-zero2"), on(2, "deepspeed-zero3")
    assert row(zero2, DECODER) == row(single, DECODER)
    assert row(zero3, DECODER) == pytest.approx(row(single, DECODER) / 2, rel=0.05)
    assert any(name.startswith("ZeRO-2 gradient buckets") for name, _ in zero2.rows)
    for zero in (zero2, zero3):  # grads and the optimizer state are split either way
        assert all("sharded / 2" in name for name, _ in zero.rows if "grads (" in name or "AdamW state" in name)
    assert zero3.total_gb < zero2.total_gb


def test_auto_picks_ddp_when_one_gpu_holds_the_run_and_fsdp_when_not():
    cfg = load_config(SFT_8B, ["distributed.gpus=2"])
    assert resolve_strategy(cfg, 8, model_config=LLAMA_8B) == "fsdp"
    assert resolve_strategy(cfg, 24, model_config=LLAMA_8B) == "ddp"
    assert resolve_strategy(cfg, None) == "ddp"  # unknown GPU: the simple one
    assert resolve_strategy(load_config(SFT_8B), 8, model_config=LLAMA_8B) == "single"
    explicit = load_config(SFT_8B, ["distributed.gpus=2", 'distributed.strategy="deepspeed-zero2"'])
    assert resolve_strategy(explicit, 8) == "deepspeed-zero2"
    small, big = on(2, gpu_mem=8), on(2, gpu_mem=24)
    assert (small.strategy, big.strategy) == ("fsdp", "ddp")
    assert any(n.startswith("strategy auto -> fsdp") and "9.2 of 8 GiB" in n for n in small.notes)
    assert any(n.startswith("strategy auto -> ddp") for n in big.notes)


def test_table_says_per_gpu_and_the_effective_batch():
    table = on(2, "fsdp").render_table()
    assert "per GPU, 2 GPUs, fsdp" in table and "effective batch 2 x 8 x 2 GPUs = 32" in table
    assert "verdict: per GPU, 2 GPUs, fsdp: fits with" in table


def test_resolving_imports_no_torch():
    code = (
        "import sys\nfrom smoltrain.memory import resolve_strategy\nfrom smoltrain.config.load import load_config\n"
        f"print(resolve_strategy(load_config({str(SFT_8B)!r}, ['distributed.gpus=2']), 8, model_config={str(LLAMA_8B)!r}))\n"
        "print(sorted(x for x in ('torch', 'transformers', 'bitsandbytes') if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["fsdp", "[]"]


def test_cli_gpus(capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    args = [str(SFT_8B), "--model-config", str(LLAMA_8B), "--gpu-mem", "12"]
    assert main(["estimate", *args, "--gpus", "2"]) == 0
    out = capsys.readouterr().out
    assert "per GPU, 2 GPUs, ddp" in out and "DDP gradient buckets" in out
    assert main(["estimate", *args, "--gpus", "2", "--set", 'distributed.strategy="fsdp"']) == 0
    assert "per GPU, 2 GPUs, fsdp" in capsys.readouterr().out
    assert main(["estimate", *args, "--gpus", "0"]) == 2
    captured = capsys.readouterr()
    first, *rest = captured.err.strip().splitlines()
    assert "--gpus 0" in first and captured.out == "" and "Traceback" not in captured.err
    assert all(line.lstrip().startswith("hint:") for line in rest)


def test_fit_on_two_gpus_keeps_the_effective_batch():
    cfg = load_config(SFT_8B, ["distributed.gpus=2", 'distributed.strategy="ddp"', "train.micro_batch_size=16",
                               "train.grad_accum=1"])  # fmt: skip
    proposal = fit(cfg, 12, model_config=LLAMA_8B)
    o = proposal.overrides
    assert o["train.micro_batch_size"] * o.get("train.grad_accum", 1) * 2 == 32
    assert proposal.estimate.total_gb <= 12 * 0.9 < proposal.before.total_gb
    assert proposal.estimate.gpus == 2 and proposal.estimate.strategy == "ddp"
    assert "x 2 GPUs = 32" in proposal.explain() and "effective batch" in proposal.explain()


def test_fit_auto_shards_when_ddp_cannot_and_pins_the_strategy():
    # On 8 GiB cards: one GPU at micro-batch 1 fits (so auto alone would pick DDP), DDP's extra grads do not.
    proposal = fit(load_config(SFT_8B, ["distributed.gpus=2"]), 8, model_config=LLAMA_8B)
    assert proposal.overrides["distributed.strategy"] == "fsdp" and proposal.estimate.strategy == "fsdp"
    assert proposal.estimate.total_gb <= 8 * 0.9
    o = proposal.overrides
    assert o["train.micro_batch_size"] * o["train.grad_accum"] == 16  # x 2 GPUs: the preset's 32


def test_fit_grpo_on_two_gpus_keeps_groups_whole():
    cfg = load_config(GRPO, ["distributed.gpus=2", 'distributed.strategy="ddp"', "grpo.max_completion_length=4096",
                             "train.max_length=4608", "train.grad_accum=8"])  # fmt: skip
    proposal = fit(cfg, 8, model_config=QWEN_1_5B)
    gens = proposal.overrides.get("grpo.num_generations", cfg.grpo.num_generations)
    mb = proposal.overrides.get("train.micro_batch_size", cfg.train.micro_batch_size)
    ga = proposal.overrides.get("train.grad_accum", cfg.train.grad_accum)
    assert (mb * ga * 2) % gens == 0 and proposal.estimate.total_gb <= 8 * 0.9
