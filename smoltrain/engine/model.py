"""Load the tokenizer and the trainable model exactly as the config asks, and say what is active.

Decides the device and dtype, loads the base in 4-bit NF4 through bitsandbytes when asked (this
also works on CPU, which the tests rely on), applies Liger's Triton kernels on CUDA for the
architectures Liger supports, wraps the model with PEFT LoRA adapters, and prepares it for
non-reentrant gradient checkpointing. When the backend asks for Unsloth and it is importable on
CUDA, Unsloth's loader does all of that instead. Every choice is recorded, with its reason, in
`LoadedModel.active`, which the run_started event reports.

Runs in the worker process only. Never imports textual; imports unsloth lazily and only on CUDA.
"""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from smoltrain.config.schema import ModelSection, RunConfig, TrainSection
from smoltrain.config.techniques import facts
from smoltrain.engine import distributed
from smoltrain.engine.data.load import (
    hub_offline_context,
    hub_unreachable,
    is_local,
    looks_like_path,
)
from smoltrain.errors import ModelError
from smoltrain.pastrun import PastRun, past_run

# Unsloth wants explicit module names; these are the linear layers of Llama-family decoders.
DECODER_LINEAR_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


@dataclass
class LoadedModel:
    model: Any  # a peft.PeftModel (or the bare model for full fine-tuning)
    tokenizer: Any
    device: str
    dtype: torch.dtype
    backend: str
    active: dict[str, str] = field(default_factory=dict)

    @property
    def trainable_params(self) -> int:
        return sum(p.numel() for p in self.model.parameters() if p.requires_grad)

    @property
    def total_params(self) -> int:
        # A 4-bit Params4bit packs two weights per byte-sized element: count the weights, not the bytes.
        return sum(p.numel() * (2 if p.__class__.__name__ == "Params4bit" else 1) for p in self.model.parameters())


def resolve_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(setting: str, device: str) -> torch.dtype:
    if setting != "auto":
        return DTYPES[setting]
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32  # CPU matmuls in half precision are slow and some ops are missing


def choose_backend(train: TrainSection, device: str) -> tuple[str, str]:
    """(backend, reason). Checks importability without importing: Unsloth patches transformers on import."""
    installed = importlib.util.find_spec("unsloth") is not None
    if train.backend == "hf":
        return "hf", "off: backend = hf"
    if device != "cuda":
        if train.backend == "unsloth":
            raise ModelError("train.backend = 'unsloth' needs a CUDA GPU", hint="set train.backend = 'auto' or 'hf'")
        return "hf", "off: no CUDA"
    if not installed:
        if train.backend == "unsloth":
            raise ModelError(
                "train.backend = 'unsloth' but Unsloth is not installed",
                hint="pip install 'smoltrain[unsloth]' on the GPU machine, or set train.backend = 'auto'",
            )
        return "hf", "off: not installed"
    if distributed.is_distributed() and train.backend == "auto":
        # Unsloth's patched kernels target one GPU; FSDP and DeepSpeed wrap transformers' own modules.
        return "hf", "off: more than one GPU (set train.backend = 'unsloth' to try it under DDP)"
    return "unsloth", "on"


def load_tokenizer(model: ModelSection) -> Any:
    """The model's tokenizer (no weights), with a pad token: what data checks and training both use."""
    from transformers import AutoTokenizer

    start = past_run(model.name_or_path)
    source = model.name_or_path if start is None else _tokenizer_folder(start)
    # A local folder is checked first: without config.json the tokenizer may load (or fail with a
    # tokenizer message and a network hint) while the weights would fail only in the worker.
    problem = _not_a_model_folder(source) if start is None else None
    if problem is not None:
        raise problem
    try:
        with hub_offline_context(source):  # no network: fail in seconds, not after retries
            tokenizer = AutoTokenizer.from_pretrained(
                source, revision=model.revision if start is None else None, trust_remote_code=model.trust_remote_code
            )
    except (OSError, ValueError) as exc:
        problem = _not_found(source, exc)
        if start is not None:
            problem = ModelError(f"model.name_or_path = {model.name_or_path!r}: cannot load the tokenizer of run "
                                 f"{start.name} from {source} ({_first_line(exc)})",
                                 hint=problem.hint, needs_network=problem.needs_network)  # fmt: skip
        raise problem from None
    if tokenizer.pad_token is None:
        # Padding is masked out of the loss, so reusing EOS is safe and the common practice.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _tokenizer_folder(start: PastRun) -> str:
    """A run saves its tokenizer (and chat template) in final/ beside the adapter; a bare adapter has its base's."""
    return str(start.result) if (start.result / "tokenizer_config.json").is_file() else start.config_source


def load_model(cfg: RunConfig, tokenizer: Any) -> LoadedModel:
    """The trainable model for cfg's technique: a causal LM, or a 1-logit sequence classifier for reward models."""
    from transformers import set_seed

    # The LoRA matrices (and a reward model's score head) are drawn at random when they are made, before
    # the Trainer seeds anything: seed here, or two runs of one preset differ from their first step.
    set_seed(cfg.train.seed)
    device = resolve_device()
    dtype = resolve_dtype(cfg.model.dtype, device)
    backend, unsloth_reason = choose_backend(cfg.train, device)
    scores = facts(cfg.train.technique).model_class == "sequence_classification"
    if backend == "unsloth" and scores:
        backend, unsloth_reason = "hf", "off: Unsloth trains causal LMs, not reward models"
    if backend == "unsloth":
        loaded = _load_with_unsloth(cfg, dtype)
    else:
        loaded = _load_with_transformers(cfg, tokenizer, device, dtype)
    loaded.active["unsloth"] = unsloth_reason
    return loaded


def _load_with_transformers(cfg: RunConfig, tokenizer: Any, device: str, dtype: torch.dtype) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    kwargs = from_pretrained_kwargs(cfg, device, dtype, quantize=cfg.quantization.mode == "4bit")
    q = cfg.quantization
    active = {"4bit": f"on ({q.quant_type}{', double quant' if q.double_quant else ''})" if q.mode == "4bit" else "off"}
    scores = facts(cfg.train.technique).model_class == "sequence_classification"
    if scores:
        # One scalar score per sequence; the new head is trained in full (PEFT's modules_to_save).
        kwargs.update(num_labels=1, pad_token_id=tokenizer.pad_token_id)
    auto_class = AutoModelForSequenceClassification if scores else AutoModelForCausalLM
    try:
        with warnings.catch_warnings(), hub_offline_context(cfg.model.name_or_path):
            warnings.simplefilter("ignore", FutureWarning)
            model = auto_class.from_pretrained(cfg.model.name_or_path, **kwargs)
    except (OSError, ValueError) as exc:
        raise _not_found(cfg.model.name_or_path, exc) from None

    if device == "cpu" and cfg.quantization.mode == "4bit":
        _keep_cpu_4bit_weights_trainable(model)
    active["liger"] = _apply_liger(model, cfg.train.kernels, device)
    model.config.use_cache = False  # the KV cache is useless in training and conflicts with checkpointing
    if cfg.lora.enabled:
        model = _wrap_lora(model, cfg)
        active["lora"] = f"r={cfg.lora.rank}, alpha={cfg.lora.alpha} on {_targets(cfg)}"
    else:
        active["lora"] = "off: full fine-tuning"
    if cfg.train.gradient_checkpointing:
        # With frozen base weights the checkpointed blocks' inputs need grads, or backward stops there.
        model.enable_input_require_grads()
        active["checkpointing"] = "on (non-reentrant)"
    else:
        active["checkpointing"] = "off"
    return LoadedModel(model=model, tokenizer=tokenizer, device=device, dtype=dtype, backend="hf", active=active)


def from_pretrained_kwargs(cfg: RunConfig, device: str, dtype: torch.dtype, *, quantize: bool) -> dict[str, Any]:
    """from_pretrained's arguments for a model of this run (the trained one, or a distillation teacher):
    safetensors in `dtype` on `device`, and with `quantize` the run's 4-bit [quantization] settings."""
    from transformers import BitsAndBytesConfig

    kwargs: dict[str, Any] = {
        "revision": cfg.model.revision,
        "trust_remote_code": cfg.model.trust_remote_code,
        "dtype": dtype,
        "use_safetensors": True,
        # Each process of a multi-GPU run holds its own copy on its own GPU (DDP; FSDP shards it later).
        "device_map": distributed.cuda_device_map() if device == "cuda" else {"": "cpu"},
    }
    if quantize:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=cfg.quantization.quant_type,
            bnb_4bit_use_double_quant=cfg.quantization.double_quant,
            bnb_4bit_compute_dtype=dtype,
            bnb_4bit_quant_storage=dtype,  # lets FSDP shard the 4-bit weights under accelerate launch
        )
    return kwargs


def _keep_cpu_4bit_weights_trainable(model: Any) -> None:
    """bitsandbytes 0.50 on CPUs with AVX512-BF16 repacks a 4-bit layer's weights the first time it
    runs in eval mode; afterwards the loss is still right but the gradients through it are wrong
    (after the first evaluation, SFT loss rose instead of falling). Turning the repack off fixes it."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit) and hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def _apply_liger(model: Any, kernels: str, device: str) -> str:
    if kernels == "none":
        return "off: kernels = none"
    if device != "cuda":
        if kernels == "liger":
            raise ModelError("train.kernels = 'liger' needs a CUDA GPU (Liger's kernels are Triton)", hint="set train.kernels = 'auto'")
        return "off: no CUDA"
    if importlib.util.find_spec("liger_kernel") is None:
        if kernels == "liger":
            raise ModelError("train.kernels = 'liger' but liger-kernel is not installed", hint="pip install liger-kernel")
        return "off: liger-kernel not installed"
    from liger_kernel.transformers.monkey_patch import (
        MODEL_TYPE_TO_APPLY_LIGER_FN,
        _apply_liger_kernel_to_instance,
    )

    model_type = model.config.model_type
    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        if kernels == "liger":
            raise ModelError(f"Liger has no kernels for model type {model_type!r}", hint="set train.kernels = 'auto'")
        return f"off: no Liger kernels for {model_type}"
    # TRL's trainers compute the loss with their own chunked LM head, so Liger's fused
    # cross-entropy (which replaces model.forward) would be dropped: patch the layers only.
    _apply_liger_kernel_to_instance(model=model, rope=True, rms_norm=True, swiglu=True, geglu=True,
                                    cross_entropy=False, fused_linear_cross_entropy=False)  # fmt: skip
    return "on (RMSNorm, RoPE, SwiGLU)"


def _targets(cfg: RunConfig) -> str:
    t = cfg.lora.target_modules
    return t if isinstance(t, str) else ", ".join(t)


def _wrap_lora(model: Any, cfg: RunConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora.rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        task_type="SEQ_CLS" if facts(cfg.train.technique).model_class == "sequence_classification" else "CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as exc:
        raise ModelError(f"lora.target_modules: {exc}", hint='use "all-linear" or names printed by the model') from None


def _load_with_unsloth(cfg: RunConfig, dtype: torch.dtype) -> LoadedModel:  # pragma: no cover - CUDA only
    from unsloth import FastLanguageModel

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=cfg.model.name_or_path,
        max_seq_length=cfg.train.max_length,
        dtype=dtype,
        load_in_4bit=cfg.quantization.mode == "4bit",
        revision=cfg.model.revision,
        trust_remote_code=cfg.model.trust_remote_code,
    )
    targets = DECODER_LINEAR_MODULES if cfg.lora.target_modules == "all-linear" else cfg.lora.target_modules
    model = FastLanguageModel.get_peft_model(
        model,
        r=cfg.lora.rank,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=targets,
        use_gradient_checkpointing="unsloth" if cfg.train.gradient_checkpointing else False,
        random_state=cfg.train.seed,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    active = {
        "4bit": "on (Unsloth's NF4)" if cfg.quantization.mode == "4bit" else "off",
        "liger": "off: Unsloth brings its own kernels",
        "lora": f"r={cfg.lora.rank}, alpha={cfg.lora.alpha} on {', '.join(targets)}",
        "checkpointing": "on (Unsloth's offloaded)" if cfg.train.gradient_checkpointing else "off",
    }
    return LoadedModel(model=model, tokenizer=tokenizer, device="cuda", dtype=dtype, backend="unsloth", active=active)


def merge_adapter(cfg: RunConfig, adapter_dir: Path, out_dir: Path, *, dtype: torch.dtype | None = None) -> Path:
    """Fold a trained LoRA adapter into a 16-bit copy of its base (cfg.model.name_or_path): for the next
    pipeline stage, and for `smoltrain export`. A full fine-tune's folder (no adapter_config.json) is
    its own base and is saved as it is.

    Merging into 4-bit weights would round the update away, so the base is loaded unquantized on
    the CPU (the GPU still holds nothing from the finished stage only after its trainer is freed), in
    `dtype` or `merge_dtype`'s choice. A reward model stays a sequence classifier with its trained
    score head. Beside the safetensors go the trained tokenizer and its chat template, the base's
    SentencePiece tokenizer.model where it has one (llama.cpp's converter reads it), and, for a
    causal LM, a generation_config whose eos_token_id includes the template's end-of-turn token, so
    transformers and vLLM stop where the trained answers did."""
    from peft import PeftModel
    from transformers import (
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    full_model = not (adapter_dir / "adapter_config.json").is_file()
    source = str(adapter_dir) if full_model else cfg.model.name_or_path
    revision = None if full_model else cfg.model.revision
    if dtype is None:
        dtype = merge_dtype(cfg, load_base_config(source, revision, cfg.model.trust_remote_code, "the base model"))[0]
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": cfg.model.trust_remote_code, "dtype": dtype,
                              "use_safetensors": True, "device_map": {"": "cpu"}}  # fmt: skip
    scores = facts(cfg.train.technique).model_class == "sequence_classification"
    if scores:
        kwargs.update(num_labels=1, pad_token_id=tokenizer.pad_token_id)
    auto_class = AutoModelForSequenceClassification if scores else AutoModelForCausalLM
    with warnings.catch_warnings(), hub_offline_context(source):
        warnings.simplefilter("ignore", FutureWarning)
        model = auto_class.from_pretrained(source, **kwargs)
        if not full_model:
            model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    if not scores:
        _add_stop_tokens(model.generation_config, tokenizer)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    tokenizer.save_pretrained(str(out_dir))
    spm = _base_file(source, "tokenizer.model", revision)
    if spm is not None and not (out_dir / "tokenizer.model").exists():
        shutil.copyfile(spm, out_dir / "tokenizer.model")
    return out_dir


def merge_dtype(cfg: RunConfig, base_config: Any) -> tuple[torch.dtype, str]:
    """The dtype of a merged copy, and why: the run's 16-bit model.dtype, else the base's own dtype
    (float32 stays float32 only for a float32 base, such as the bundled demo model)."""
    if cfg.model.dtype in ("bfloat16", "float16"):
        return DTYPES[cfg.model.dtype], f"model.dtype = {cfg.model.dtype}"
    own = getattr(base_config, "dtype", None) or getattr(base_config, "torch_dtype", None)
    own = DTYPES.get(own, None) if isinstance(own, str) else own
    if own in (torch.bfloat16, torch.float16):
        return own, "the base model's own dtype"
    if own == torch.float32:
        return torch.float32, "the base model is float32, so the merge is too"
    return torch.bfloat16, "the base model's config names no dtype"


def load_base_config(name: str, revision: str | None, trust_remote_code: bool, what: str) -> Any:
    """The config of the model `name` (a folder or a hub id), without its weights; offline when the hub
    cannot be reached, so a model missing from the cache fails in seconds. ModelError naming `what`."""
    from transformers import AutoConfig

    if looks_like_path(name) and not is_local(name):
        raise ModelError(f"{what} {name!r}: no such folder",
                         hint="was the run or its model moved? give the model back its path, or export on the machine that trained it")  # fmt: skip
    if is_local(name) and not (Path(name).expanduser() / "config.json").is_file():
        raise ModelError(f"{what} {name!r}: no config.json there, so not a model folder",
                         hint="the folder needs the model as save_pretrained writes it")  # fmt: skip
    try:
        with warnings.catch_warnings(), hub_offline_context(name):
            warnings.simplefilter("ignore", FutureWarning)
            return AutoConfig.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        if hub_unreachable(name):
            raise ModelError(f"{what} {name!r} is not in the local Hugging Face cache, and the hub cannot be reached",
                             hint=f"connect to the network once to download it into the cache (`hf download {name}`), then try again",
                             needs_network=True) from None  # fmt: skip
        raise ModelError(f"{what} {name!r}: cannot load its config ({_first_line(exc)})",
                         hint="check the model id and your network") from None  # fmt: skip


def _add_stop_tokens(generation_config: Any, tokenizer: Any) -> None:
    from smoltrain.engine.generate import stop_token_ids

    eos = generation_config.eos_token_id
    stops = [] if eos is None else [eos] if isinstance(eos, int) else list(eos)
    stops += [i for i in stop_token_ids(tokenizer) if i not in stops]
    if stops:
        generation_config.eos_token_id = stops[0] if len(stops) == 1 else stops
    if generation_config.pad_token_id is None and tokenizer.pad_token_id is not None:
        generation_config.pad_token_id = tokenizer.pad_token_id


def _base_file(name: str, filename: str, revision: str | None) -> Path | None:
    """`filename` of the model `name`: in its folder, or in the Hugging Face cache (never downloaded)."""
    if is_local(name):
        path = Path(name).expanduser() / filename
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, filename, revision=revision)
    return Path(cached) if isinstance(cached, str) else None


def _not_found(name: str, exc: Exception) -> ModelError:
    if looks_like_path(name) and not Path(name).expanduser().exists():
        return ModelError(f"model.name_or_path = {name!r}: no such folder", hint="check the path, or give a hub id such as Qwen/Qwen3-0.6B")
    if is_local(name):
        # A folder on disk: the network has nothing to do with it.
        return _not_a_model_folder(name) or ModelError(
            f"model.name_or_path = {name!r}: cannot load it ({_first_line(exc)})",
            hint="the folder needs a whole model as save_pretrained writes it: config.json, the weights and the tokenizer files",
        )
    if hub_unreachable(name):
        return ModelError(
            f"model.name_or_path = {name!r}: not in the local Hugging Face cache, and the hub cannot be reached",
            hint="connect to the network once to download it, or download it elsewhere (`hf download ID`) and give its folder",
            needs_network=True,
        )
    return ModelError(
        f"model.name_or_path = {name!r}: cannot load it ({_first_line(exc)})",
        hint="check the hub id and your network; offline, download it once (`hf download ID`) and give its folder",
    )


def _not_a_model_folder(name: str) -> ModelError | None:
    """Why the local path `name` is not a model to train from (no config.json), or None (a model folder, or a hub id).

    A LoRA adapter folder (a past run's final/) never reaches here: smoltrain/pastrun.py resolves it to its
    base, which the worker merges it into (engine/run.py), so no adapter is ever stacked on."""
    path = Path(name).expanduser()
    if not is_local(name) or (path / "config.json").is_file():
        return None
    if not path.is_dir():
        return ModelError(f"model.name_or_path = {name!r}: a file, not a model folder",
                          hint="give the folder that holds config.json and the weights, or a hub id such as Qwen/Qwen3-0.6B")  # fmt: skip
    files = sorted(p.name for p in path.iterdir() if not p.name.startswith("."))
    holds = "the folder is empty" if not files else f"it holds {', '.join(files[:5])}{' ...' if len(files) > 5 else ''}"
    return ModelError(
        f"model.name_or_path = {name!r}: no config.json: not a model folder ({holds})",
        hint="give a folder saved with save_pretrained (config.json, the weights, the tokenizer files), "
        "or a hub id such as Qwen/Qwen3-0.6B",
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
