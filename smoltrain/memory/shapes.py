"""A model's shape from its config.json: where to find that file, and the parameter counts it implies.

`read_model_config` finds config.json for `model.name_or_path` without loading the model: an
explicit file or folder (`--model-config`), a past run's base (smoltrain/pastrun.py), a local model
folder, the Hugging Face cache, then the hub. `ModelShape` turns the config into the numbers the memory model needs: every linear layer of a
decoder block (what LoRA and 4-bit quantization act on), the embeddings, the output head (tied or
not) and the norms. The counts equal those of the model transformers builds (tests compare them on
the meta device for Llama, Mistral, Qwen2, Qwen3, Gemma 2, Gemma 3, Phi-3 and SmolLM2).

Phi-3 fuses layers: one `qkv_proj` (hidden -> q + k + v) and one `gate_up_proj` (hidden -> 2 x
intermediate). That changes LoRA's count (an adapter has one input side per layer, not three or
two: Phi-3-mini at r=16 has 25.2M adapter parameters, not the 29.9M a Llama-like reading gives) and
the 4-bit dequantization buffer (the largest layer is the fused gate_up_proj).

Imports no torch (and no transformers): `smoltrain estimate` runs on a machine without the ML stack.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoltrain.errors import ModelError
from smoltrain.pastrun import past_run

# Families whose decoder block is Llama's (q/k/v/o + gated MLP) with these differences.
QKV_BIAS_TYPES = {"qwen2"}  # q, k, v have biases; o does not
QK_NORM_TYPES = {"qwen3", "gemma3_text"}  # an RMSNorm over head_dim on q and on k
FOUR_NORM_TYPES = {"gemma2", "gemma3_text"}  # pre- and post-norms around attention and MLP
# transformers runs these with eager attention (sdpa has no logit soft-capping), which keeps the
# (seq x seq) attention probabilities for backward.
EAGER_ATTENTION_TYPES = {"gemma2"}
FUSED_TYPES = {"phi3"}  # qkv_proj and gate_up_proj instead of q/k/v_proj and gate/up_proj
KNOWN_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3"}
TIED_BY_DEFAULT = {"gemma", "gemma2", "gemma3_text"}  # the config classes' own defaults when the key is absent


@dataclass(frozen=True)
class Linear:
    name: str
    in_features: int
    out_features: int
    bias: bool = False

    @property
    def params(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


@dataclass(frozen=True)
class ModelShape:
    model_type: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    tied_embeddings: bool
    linears: tuple[Linear, ...]  # one decoder block's linear layers
    norms_per_layer: int  # RMSNorms over hidden_size in one block
    qk_norm: bool
    eager_attention: bool
    known_layout: bool  # False: an unknown model_type, read as Llama-like

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ModelShape:
        # Multimodal wrappers (e.g. Gemma 3 4B+) keep the language model's numbers in text_config.
        cfg = {**config, **config["text_config"]} if isinstance(config.get("text_config"), dict) else config
        if cfg.get("num_local_experts") or cfg.get("num_experts"):
            raise ModelError(
                f"model type {cfg.get('model_type')!r} is a mixture of experts, which the memory model does not cover",
                hint="estimate a dense model of similar size instead, or measure on the GPU",
            )
        try:
            h, n_layers, n_heads = int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["num_attention_heads"])
            vocab, inter = int(cfg["vocab_size"]), int(cfg["intermediate_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"config.json lacks {exc} (model type {cfg.get('model_type')!r})",
                             hint="give a decoder-only model's config.json with --model-config") from None  # fmt: skip
        model_type = str(cfg.get("model_type", "llama"))
        n_kv = int(cfg.get("num_key_value_heads") or n_heads)
        head_dim = int(cfg.get("head_dim") or h // n_heads)
        q_out, kv_out = n_heads * head_dim, n_kv * head_dim
        attn_bias = bool(cfg.get("attention_bias", False))
        qkv_bias = attn_bias or model_type in QKV_BIAS_TYPES
        mlp_bias = bool(cfg.get("mlp_bias", False))
        if model_type in FUSED_TYPES:
            linears: tuple[Linear, ...] = (
                Linear("qkv_proj", h, q_out + 2 * kv_out, qkv_bias),
                Linear("o_proj", q_out, h, attn_bias),
                Linear("gate_up_proj", h, 2 * inter, mlp_bias),
                Linear("down_proj", inter, h, mlp_bias),
            )
        else:
            linears = (
                Linear("q_proj", h, q_out, qkv_bias),
                Linear("k_proj", h, kv_out, qkv_bias),
                Linear("v_proj", h, kv_out, qkv_bias),
                Linear("o_proj", q_out, h, attn_bias),
                Linear("gate_proj", h, inter, mlp_bias),
                Linear("up_proj", h, inter, mlp_bias),
                Linear("down_proj", inter, h, mlp_bias),
            )
        tied = bool(cfg.get("tie_word_embeddings", model_type in TIED_BY_DEFAULT))
        return cls(
            model_type=model_type, vocab_size=vocab, hidden_size=h, num_layers=n_layers, num_heads=n_heads,
            num_kv_heads=n_kv, head_dim=head_dim, intermediate_size=inter, tied_embeddings=tied, linears=linears,
            norms_per_layer=4 if model_type in FOUR_NORM_TYPES else 2, qk_norm=model_type in QK_NORM_TYPES,
            eager_attention=model_type in EAGER_ATTENTION_TYPES, known_layout=model_type in KNOWN_TYPES,
        )  # fmt: skip

    # Parameter counts, as transformers builds the model.
    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def head_params(self) -> int:
        """The output head's own parameters: 0 when it shares the embedding matrix."""
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    @property
    def linear_params_per_layer(self) -> int:
        return sum(lin.params for lin in self.linears)

    @property
    def norm_params_per_layer(self) -> int:
        return self.norms_per_layer * self.hidden_size + (2 * self.head_dim if self.qk_norm else 0)

    @property
    def layer_params(self) -> int:
        return self.linear_params_per_layer + self.norm_params_per_layer

    @property
    def total_params(self) -> int:
        final_norm = self.hidden_size
        return self.embedding_params + self.head_params + self.num_layers * self.layer_params + final_norm

    def lora_targets(self, target_modules: list[str] | str) -> list[Linear]:
        """The block's linear layers that get adapters ("all-linear": all of them; the head never)."""
        if target_modules == "all-linear":
            return list(self.linears)
        wanted = set(target_modules)
        return [lin for lin in self.linears if lin.name in wanted]

    def lora_params(self, target_modules: list[str] | str, rank: int) -> int:
        """A (r x in) plus B (out x r) for each targeted layer of each block."""
        per_layer = sum(rank * (lin.in_features + lin.out_features) for lin in self.lora_targets(target_modules))
        return per_layer * self.num_layers


def read_model_config(name_or_path: str, revision: str | None = None, config_path: str | Path | None = None) -> dict[str, Any]:
    """The model's config.json as a dict: from `config_path` if given, a local folder, the HF cache, or the hub;
    for a past run (smoltrain/pastrun.py), its base's."""
    if config_path is not None:
        path = Path(config_path).expanduser()
        path = path / "config.json" if path.is_dir() else path
        if not path.is_file():
            raise ModelError(f"--model-config {config_path}: no such file", hint="give a config.json file or its folder")
        return _load_json(path)
    start = past_run(name_or_path)  # a past run trains on as its base's shape (a merged copy has the same)
    if start is not None:
        return read_model_config(start.config_source, start.revision if start.base is not None else None)
    local = Path(name_or_path).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"model.name_or_path = {name_or_path!r}: the folder has no config.json",
                             hint="point it at a model folder saved with save_pretrained")  # fmt: skip
        return _load_json(local / "config.json")
    found = _from_hub_cache_or_network(name_or_path, revision)
    if found is None:
        raise ModelError(
            f"model.name_or_path = {name_or_path!r}: its config.json is not in the local Hugging Face cache "
            "and could not be downloaded",
            hint="pass --model-config PATH/config.json (bench/model_configs/ has common ones), "
            f"or fetch it once: hf download {name_or_path} config.json",
        )
    return _load_json(found)


def _from_hub_cache_or_network(repo_id: str, revision: str | None) -> Path | None:
    if repo_id.count("/") > 1 or repo_id.startswith((".", "/", "~")):
        return None  # a path that does not exist, not a hub id
    try:
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers
        return None
    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return Path(cached)
    try:
        return Path(hf_hub_download(repo_id, "config.json", revision=revision, local_files_only=True))
    except Exception:  # noqa: BLE001, S110 - any miss in the cache means: try the network
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False") or not _hub_reachable():
        return None
    try:
        return Path(hf_hub_download(repo_id, "config.json", revision=revision, etag_timeout=5))
    except Exception:  # noqa: BLE001 - offline, gated, misspelt: all mean "not available", said by the caller
        return None


def _hub_reachable() -> bool:
    """Whether the hub's host resolves: without it hf_hub_download retries for about 20 s before failing."""
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: cannot read it as JSON ({exc})", hint="give the model's config.json") from None
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a JSON object", hint="give the model's config.json")
    return data


def detect_gpu_memory_gb() -> float | None:
    """Total memory of the first NVIDIA GPU in GiB, from nvidia-smi (no torch); None without one."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout  # fmt: skip
        return int(out.strip().splitlines()[0]) / 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
