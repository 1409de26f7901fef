"""The memory model against torch itself: parameter counts of the models transformers builds (meta
device, no weights), and the activation bytes autograd really saves for the tiny Llama (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

from smoltrain.memory.activations import ActivationModel
from smoltrain.memory.shapes import ModelShape

ROOT = Path(__file__).resolve().parents[2]
# Every family of the test matrix (tests/families), at its published size.
MODELS = ["llama-3.1-8b", "llama-3.2-1b", "mistral-7b-v0.3", "qwen2.5-0.5b", "qwen3-0.6b", "qwen3-4b", "gemma-2-2b",
          "gemma-3-1b", "phi-3-mini-4k", "smollm2-135m"]
TINY = ROOT / "assets" / "tiny-llama"


def config_of(name: str) -> dict:
    folder = TINY if name == "tiny-llama" else ROOT / "bench" / "model_configs" / name
    return json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize("name", [*MODELS, "tiny-llama"])
def test_parameter_counts_match_the_real_model(name):
    raw = config_of(name)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**raw))
    shape = ModelShape.from_config(raw)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    assert shape.tied_embeddings == tied
    assert shape.embedding_params == model.get_input_embeddings().weight.numel()
    assert shape.head_params == (0 if tied else model.get_output_embeddings().weight.numel())
    assert shape.total_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", [*MODELS, "tiny-llama"])
def test_lora_parameter_counts_match_peft(name):
    raw = config_of(name)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**raw))
    lora = peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules="all-linear"))
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert ModelShape.from_config(raw).lora_params("all-linear", 8) == trainable


def saved_bytes(checkpointing: bool, batch: int = 2, seq: int = 128) -> int:
    """Unique bytes autograd saves for backward in a LoRA forward of the tiny Llama, parameters excluded."""
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_pretrained(str(TINY), dtype=torch.float32)
    model = peft.get_peft_model(model, peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05,
                                                       target_modules="all-linear", task_type="CAUSAL_LM"))  # fmt: skip
    model.train()
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            seen.setdefault(storage.data_ptr(), storage.nbytes())
        return t

    ids = torch.randint(4, 600, (batch, seq), generator=torch.Generator().manual_seed(0))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        hidden = model.base_model.model.model(input_ids=ids, use_cache=False).last_hidden_state
        hidden.sum().backward()  # a sum saves nothing itself: what is counted is the backbone's
    return sum(seen.values())


@pytest.mark.parametrize("checkpointing", [False, True])
def test_activation_formula_agrees_with_saved_tensors(checkpointing):
    shape = ModelShape.from_config(config_of("tiny-llama"))
    # CPU, fp32: eager kernels, dropout keeps a float mask, no padding mask so sdpa keeps k/v unrepeated.
    act = ActivationModel(shape=shape, act_bytes=4, lora_rank=16, lora_targets=tuple(l.name for l in shape.linears),
                          lora_dropout=0.05, liger=False, kv_repeated=False, mask_bytes=4)  # fmt: skip
    measured = saved_bytes(checkpointing)
    predicted = act.saved_bytes(2, 128, checkpointing)
    assert predicted == pytest.approx(measured, rel=0.15), (predicted, measured)


def test_phi3_is_read_with_its_fused_layers_not_as_a_llama():
    shape = ModelShape.from_config(config_of("phi-3-mini-4k"))
    assert [lin.name for lin in shape.linears] == ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
    assert shape.known_layout
    assert round(shape.lora_params("all-linear", 16) / 1e6, 1) == 25.2  # a Llama-like reading gave 29.9
    # bitsandbytes dequantizes the fused gate_up_proj (3072 x 16384) for its matmul: the largest buffer.
    assert max(lin.in_features * lin.out_features for lin in shape.linears) == 3072 * 2 * 8192
