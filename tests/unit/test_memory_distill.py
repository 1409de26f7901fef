"""Distillation's memory: the teacher's frozen weights sit beside the student's, its forward and the
student's generation are phases of the step; a stage teacher is the student's size (torch-free)."""

from __future__ import annotations

from pathlib import Path

from smoltrain.config.load import load_config
from smoltrain.memory import estimate

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bench" / "model_configs"
PRESET = ROOT / "presets" / "distill-qwen3-0.6b-from-qwen3-4b.toml"


def gib(est, prefix: str) -> float:
    return sum(g for name, g in est.rows + est.other_rows if name.startswith(prefix))


def test_the_teacher_is_held_in_4bit_beside_the_student_and_read_from_its_own_config():
    student = CONFIGS / "qwen3-0.6b" / "config.json"
    big = estimate(load_config(PRESET, [f"distill.teacher={CONFIGS / 'qwen3-4b'}"]), 8, model_config=student)
    same = estimate(load_config(PRESET, [f"distill.teacher={CONFIGS / 'qwen3-0.6b'}"]), 8, model_config=student)
    # Qwen3-4B's decoder in NF4 is ~1.75 GiB, 0.6B's ~0.21: the teacher rows follow the teacher's config.
    assert 1.6 < gib(big, "teacher base weights") < 1.9 and gib(same, "teacher base weights") < 0.3
    assert big.total_gb - same.total_gb > 1.5 and big.fits
    names = [name for name, _ in big.rows + big.other_rows]
    assert any("teacher forward" in n for n in names) and any("distill generation: KV cache (16 prompts x 1" in n for n in names)
    plain = estimate(load_config(PRESET, [f"distill.teacher={CONFIGS / 'qwen3-4b'}", "quantization.mode=none",
                                          "lora.enabled=true"]), 8, model_config=student)  # fmt: skip
    assert gib(plain, "teacher base weights") > 3 * gib(big, "teacher base weights"), "16-bit without 4-bit"
