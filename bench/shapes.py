"""Model shapes for the benchmark: published configs with random weights, written once and cached.

Speed and memory depend on a model's shape, not on its weights' values, so the harness trains
random-weight copies of public architectures (bench/model_configs/<shape>/config.json) and needs
no download and no licence click-through. `tiny` is the bundled trained tiny Llama (assets/).

How the weights are made: the model is built on the `meta` device (no memory), and each
parameter is then drawn one at a time (on the GPU when there is one: drawing 8B normals on a CPU
takes minutes, on an H200 under a second; the values differ, the shapes do not, and only the
shapes matter here) and written to bf16 safetensors shards of at
most 2 GiB. So the 8B shape needs 16 GB of disk once (cached, reused by every arm and run) but
never more than one shard in RAM, and every arm loads it the ordinary way (`from_pretrained`,
quantizing to 4-bit on load), exactly as it would load a real checkpoint.

Tokenizer: the bundled tiny tokenizer (682 tokens) is copied next to the weights, and the
config's bos/eos/pad ids are set to its ids. Every id it produces is a valid id in the big
vocabularies, so the embedding and LM head keep their real, published sizes (the LM head is a
large part of the FLOPs and memory of the small shapes); ids the model samples beyond the
tokenizer's range decode to nothing, which only matters for GRPO's reward text, not its speed.

    python -m bench.shapes llama-3.2-1b      # build the cache now and print where it is

Imports torch and transformers only inside functions, so the parent harness stays light.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent
CONFIGS_DIR = BENCH_DIR / "model_configs"
TINY_MODEL = PROJECT_ROOT / "assets" / "tiny-llama"
DEFAULT_CACHE = BENCH_DIR / ".cache"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
SHARD_BYTES = 2 * 2**30


def shape_names() -> list[str]:
    """Every shape with a config in bench/model_configs, plus the bundled `tiny`."""
    return ["tiny", *sorted(p.parent.name for p in CONFIGS_DIR.glob("*/config.json"))]


def config_path(shape: str) -> Path:
    if shape == "tiny":
        return TINY_MODEL / "config.json"
    path = CONFIGS_DIR / shape / "config.json"
    if not path.exists():
        raise SystemExit(f"unknown shape {shape!r}; known: {', '.join(shape_names())}")
    return path


def materialize(shape: str, cache_dir: Path = DEFAULT_CACHE) -> Path:
    """A loadable model folder for `shape` (config, random bf16 weights, tokenizer); built once."""
    if shape == "tiny":
        return TINY_MODEL
    source = config_path(shape)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    out = cache_dir / "models" / f"{shape}-{digest}"
    if (out / "COMPLETE").exists():
        return out
    if out.exists():
        shutil.rmtree(out)  # an interrupted build
    out.mkdir(parents=True)
    config = _bench_config(json.loads(source.read_text()))
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copy(TINY_MODEL / name, out / name)
    _write_random_weights(out, seed=0)
    (out / "COMPLETE").write_text(f"random weights for {source}\n")
    return out


def _bench_config(config: dict[str, Any]) -> dict[str, Any]:
    tiny = json.loads((TINY_MODEL / "config.json").read_text())
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        config[key] = tiny[key]
    config["torch_dtype"] = config["dtype"] = "bfloat16"
    return config


def _write_random_weights(out: Path, seed: int) -> None:
    import torch
    from safetensors.torch import save_file

    model = _meta_model(out / "config.json")
    std = float(getattr(model.config, "initializer_range", 0.02))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device).manual_seed(seed)
    shard: dict[str, Any] = {}
    shard_bytes, total_bytes, shard_of = 0, 0, {}
    names: list[str] = []  # shard file names, renamed once their count is known

    def flush() -> None:
        nonlocal shard, shard_bytes
        names.append(f"part-{len(names) + 1}.safetensors")
        save_file(shard, str(out / names[-1]), metadata={"format": "pt"})
        shard, shard_bytes = {}, 0

    # named_parameters() drops the tied LM head, as transformers' own save does.
    for name, param in model.named_parameters():
        nbytes = param.numel() * 2
        if shard and shard_bytes + nbytes > SHARD_BYTES:
            flush()
        shard[name] = _random_like(name, tuple(param.shape), std, generator)
        shard_of[name] = len(names)
        shard_bytes += nbytes
        total_bytes += nbytes
    flush()
    final = [f"model-{i + 1:05d}-of-{len(names):05d}.safetensors" for i in range(len(names))]
    for tmp, name in zip(names, final):
        (out / tmp).rename(out / name)
    index = {"metadata": {"total_size": total_bytes}, "weight_map": {k: final[i] for k, i in shard_of.items()}}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _random_like(name: str, shape: tuple[int, ...], std: float, generator: Any) -> Any:
    import torch

    if len(shape) == 1:  # RMSNorm scales start at one, biases at zero, as the models' own init does
        return torch.ones(shape, dtype=torch.bfloat16) if "norm" in name else torch.zeros(shape, dtype=torch.bfloat16)
    drawn = torch.empty(shape, dtype=torch.float32, device=generator.device).normal_(0.0, std, generator=generator)
    return drawn.to(torch.bfloat16).cpu()


def _meta_model(config_file: Path, reward: bool = False) -> Any:
    import torch
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
    )

    config = AutoConfig.from_pretrained(str(config_file.parent))
    with torch.device("meta"):
        if reward:
            config.num_labels = 1
            return AutoModelForSequenceClassification.from_config(config)
        return AutoModelForCausalLM.from_config(config)


def matmul_params(shape: str, reward: bool = False) -> int:
    """N in the MFU formulas: the weights of every matrix multiply a token goes through.

    That is every nn.Linear, the LM head included even when it is tied to the embedding (the
    lookup itself is not a matmul). A reward model has a one-logit score head instead of the LM
    head, which matters: the head is a quarter of Qwen2.5-0.5B."""
    import torch

    model = _meta_model(config_path(shape), reward=reward)
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


if __name__ == "__main__":
    for arg in sys.argv[1:] or ["tiny"]:
        print(materialize(arg))
