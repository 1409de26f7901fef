"""More than one GPU: which strategy a run uses, and what each GPU then holds of the resident memory.

    choose_strategy(requested, gpus, one_gpu_gb, gpu_mem_gb) -> (strategy, why)
    per_device_rows(resident, strategy, gpus) -> rows of one GPU's resident memory

Activations do not change (each GPU runs its own micro-batch); what changes is who holds the
weights, the trainable parameters, their gradients and the optimizer state, and which buffers the
strategy adds. The configurations modelled are the ones the worker sets up
(smoltrain/engine/distributed.py): DDP through the Trainer (no gradient_as_bucket_view), FSDP
full_shard with decoder layers as units and backward prefetch, DeepSpeed ZeRO-2/3 with
overlap_comm and contiguous_gradients and DeepSpeed's default bucket sizes. The formulas and their
sources are in docs/memory.md, "More than one GPU".

Imports no torch (nor anything of smoltrain's but the config schema): estimate.py builds the
`Resident` figures and renders the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from smoltrain.config.schema import RunConfig

GIB = 1024**3
FP32 = 4
STRATEGIES = ("ddp", "fsdp", "deepspeed-zero2", "deepspeed-zero3")
# DeepSpeed's defaults, which the worker's ZeRO config leaves in place (it sets no bucket sizes):
# zero_optimization.reduce_bucket_size and stage3_prefetch_bucket_size, in elements.
DS_REDUCE_BUCKET = 500_000_000
DS_PREFETCH_BUCKET = 50_000_000
FSDP_LAYERS_GATHERED = 2  # backward_prefetch=BACKWARD_PRE: the next layer is gathered while one computes

Rows = list[tuple[str, float]]


def choose_strategy(requested: str, gpus: int, one_gpu_gb: float | None, gpu_mem_gb: float | None) -> tuple[str, str]:
    """The strategy a run uses ("single" on one GPU) and, for auto, why; `one_gpu_gb` is the run's
    estimate on a single GPU (None when the memory model cannot tell)."""
    if gpus <= 1:
        return "single", ""
    if requested != "auto":
        return requested, f"strategy {requested} (distributed.strategy)"
    if gpu_mem_gb is None or one_gpu_gb is None:
        why = "no GPU size given" if gpu_mem_gb is None else "the memory model cannot size this model"
        return "ddp", f"strategy auto -> ddp: {why}; the worker decides from the real GPU (ddp when one GPU holds the run)"
    if one_gpu_gb <= gpu_mem_gb:
        return "ddp", (f"strategy auto -> ddp: one GPU holds the whole run ({one_gpu_gb:.1f} of {gpu_mem_gb:g} GiB), "
                       "so each keeps a full copy (the fastest)")  # fmt: skip
    return "fsdp", (f"strategy auto -> fsdp: one GPU would need {one_gpu_gb:.1f} of {gpu_mem_gb:g} GiB, so the weights, "
                    "gradients and optimizer state are sharded across the GPUs")  # fmt: skip


def effective_batch(cfg: RunConfig) -> str:
    """micro_batch_size x grad_accum x gpus, written out."""
    t, gpus = cfg.train, cfg.distributed.gpus
    return f"{t.micro_batch_size} x {t.grad_accum} x {gpus} GPUs = {t.micro_batch_size * t.grad_accum * gpus}"


@dataclass(frozen=True)
class Resident:
    """One GPU's resident memory before any sharding, in bytes, grouped by what the strategies do with it."""

    base: list[tuple[str, float]]  # the frozen base as stored (decoder layers, embeddings, LM head): shardable
    quant_state: float  # 4-bit absmax constants: bitsandbytes keeps them on the module, whole on every GPU
    buffers: list[tuple[str, float]]  # per matmul on every GPU (the 4-bit dequantization buffer)
    trainable: str  # "LoRA r=16 (41.9M)" or "full fine-tuning (8.03B)"
    label: str  # the trainables' row on one GPU: "LoRA r=16 (41.9M): fp32 weights + grads + 8-bit AdamW"
    n_trainable: int
    param_bytes: int  # per trainable parameter held apart from `base` (fp32 LoRA; 0 in full fine-tuning)
    grad_bytes: int  # per trainable parameter: fp32 for LoRA, the compute dtype in full fine-tuning
    optimizer: str  # "8-bit AdamW" or "AdamW"
    optimizer_bytes: float  # per trainable parameter, as smoltrain keeps it on one GPU
    optimizer_8bit: bool
    compute_bytes: int  # e: 2 for bf16/fp16
    extra: list[tuple[str, float]]  # trained in full and small (a reward head): sharded with the trainables
    layer_bytes: float  # one decoder layer as stored, with its trainable parameters
    layer_trainable: int  # trainable parameters in one decoder layer
    root_bytes: float  # what is not in a decoder layer: embeddings, LM head, final norm (FSDP's root unit)
    largest_module_bytes: float  # the largest single module's weights (what ZeRO-3 gathers at once)


def per_device_rows(r: Resident, strategy: str, gpus: int) -> Rows:
    """One GPU's resident rows (GiB) under `strategy` on `gpus` GPUs."""
    if strategy == "ddp":
        return _ddp(r)
    if strategy == "fsdp":
        return _fsdp(r, gpus)
    if strategy in ("deepspeed-zero2", "deepspeed-zero3"):
        return _deepspeed(r, gpus, stage=int(strategy[-1]))
    raise ValueError(f"unknown strategy {strategy!r}")


def whole_rows(r: Resident) -> Rows:
    """The base and buffers as one GPU holds them (no trainables): the single-GPU rows, and DDP's."""
    rows = [(label, b / GIB) for label, b in r.base]
    if r.quant_state:
        # On one GPU the decoder row counts the constants with the packed weights; put them back there.
        label, first = rows[0]
        rows[0] = (label, first + r.quant_state / GIB)
    return rows + [(label, b / GIB) for label, b in r.extra + r.buffers]


def trainable_gib(r: Resident) -> float:
    """The trainables' weights, grads and optimizer state on one GPU."""
    return r.n_trainable * (r.param_bytes + r.grad_bytes + r.optimizer_bytes) / GIB


def _ddp(r: Resident) -> Rows:
    grads = "fp32" if r.grad_bytes == FP32 else f"{8 * r.grad_bytes}-bit"
    return whole_rows(r) + [
        (r.label, trainable_gib(r)),
        # The Trainer leaves gradient_as_bucket_view off: DDP all-reduces from flat buckets that copy every grad.
        (f"DDP gradient buckets (a copy of the trainable grads, {grads})", r.n_trainable * r.grad_bytes / GIB),
    ]


def _sharded_base(r: Resident, gpus: int) -> Rows:
    rows = [(f"{label}, sharded / {gpus}", b / gpus / GIB) for label, b in r.base]
    if r.quant_state:
        rows.append(("4-bit quantization constants (absmax; whole on every GPU)", r.quant_state / GIB))
    return rows


def _fsdp(r: Resident, gpus: int) -> Rows:
    extra = [(f"{label}, sharded / {gpus}", b / gpus / GIB) for label, b in r.extra]
    gathered = FSDP_LAYERS_GATHERED * r.layer_bytes + r.layer_trainable * r.grad_bytes
    return [
        *_sharded_base(r, gpus), *extra, *[(label, b / GIB) for label, b in r.buffers],
        (f"{r.label}, sharded / {gpus}", trainable_gib(r) / gpus),
        # FSDP does not reshard the root unit after forward: it is used again first thing in backward.
        ("FSDP root unit gathered (embeddings + LM head, whole from forward to backward)", r.root_bytes / GIB),
        (f"FSDP {FSDP_LAYERS_GATHERED} decoder layers gathered (computing + prefetched) + one layer's grads",
         gathered / GIB),
    ]  # fmt: skip


def _count(elements: int) -> str:
    """5e8, as DeepSpeed's documentation writes its bucket sizes."""
    mantissa, exponent = f"{elements:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def _deepspeed(r: Resident, gpus: int, stage: int) -> Rows:
    """ZeRO in bf16/fp16: DeepSpeed casts the trainable parameters to the compute dtype and keeps an fp32
    master partition, on which the optimizer (and so its state) works."""
    e, n = r.compute_bytes, r.n_trainable
    master = FP32 if e != FP32 else 0
    optimizer = r.optimizer_bytes if r.optimizer_8bit else 2 * FP32
    share = f"sharded / {gpus}"
    if stage == 2:
        rows = whole_rows(r)
        if r.param_bytes:
            rows.append((f"{r.trainable}: weights ({8 * e}-bit, whole on every GPU)", n * e / GIB))
    else:
        rows = _sharded_base(r, gpus) + [(label, b / GIB) for label, b in r.buffers]
        rows += [(f"{label}, {share}", b / gpus / GIB) for label, b in r.extra]
        if r.param_bytes:
            rows.append((f"{r.trainable}: weights ({8 * e}-bit), {share}", n * e / gpus / GIB))
    if master:
        rows.append((f"{r.trainable}: fp32 master weights, {share}", n * master / gpus / GIB))
    rows += [(f"{r.trainable}: grads ({8 * e}-bit), {share}", n * e / gpus / GIB),
             (f"{r.trainable}: {r.optimizer} state, {share}", n * optimizer / gpus / GIB)]  # fmt: skip
    if stage == 2:
        # contiguous_gradients fills a reduce bucket of reduce_bucket_size elements; overlap_comm keeps two.
        rows.append((f"ZeRO-2 gradient buckets (2 x {_count(DS_REDUCE_BUCKET)} elements, overlap_comm)",
                     2 * DS_REDUCE_BUCKET * e / GIB))  # fmt: skip
    else:
        rows.append((f"ZeRO-3 gradient bucket ({_count(DS_REDUCE_BUCKET)} elements)", DS_REDUCE_BUCKET * e / GIB))
        # ZeRO-3 gathers module by module: the largest one whole, plus what it prefetches meanwhile.
        rows.append((f"ZeRO-3 gathered: the largest module + prefetch ({_count(DS_PREFETCH_BUCKET)} elements)",
                     (r.largest_module_bytes + DS_PREFETCH_BUCKET * e) / GIB))  # fmt: skip
    return rows
