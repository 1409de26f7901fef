"""Peak GPU memory of a run, component by component, from the preset and the model's config.json.

What is resident the whole run (base weights as bitsandbytes stores them, the trainable adapters
with their gradients and optimizer state, the CUDA context) is added to the largest of the
technique's phases: SFT and reward models have one (forward+backward); DPO's policy forward is
followed by a reference pass with the adapters off, before the backward; GRPO and RLOO alternate between
generating (num_generations completions per prompt with a KV cache), scoring them (with the reference,
adapters off, where beta > 0) and training on them. With
distributed.gpus > 1 the resident part is what one GPU holds under the run's strategy (sharding.py;
auto resolved here, against this same estimate on one GPU) and the table says "per GPU". The
formulas and their sources are in docs/memory.md.

Imports no torch: the CLI and the TUI estimate on machines without the ML stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrain.config.load import stage_configs
from smoltrain.config.schema import RunConfig
from smoltrain.errors import ModelError
from smoltrain.memory.activations import FP32, ActivationModel
from smoltrain.memory.shapes import ModelShape, read_model_config
from smoltrain.memory.sharding import (
    Resident,
    choose_strategy,
    effective_batch,
    per_device_rows,
    trainable_gib,
    whole_rows,
)

GIB = 1024**3
# Not seen by torch.cuda.memory_allocated but by nvidia-smi: the CUDA context with its kernels and
# the cuBLAS/cuDNN workspaces; about 0.4-0.8 GiB on Ampere/Ada with lazy module loading.
CUDA_CONTEXT_GIB = 0.6
ALLOCATOR_SLACK = 0.05  # the caching allocator's fragmentation, as a share of what comes and goes
# bitsandbytes NF4: 4 bits per weight plus one absmax per block of 64 weights, fp32 (32/64 bits per
# weight) or, with double quantization, 8-bit (8/64) plus a fp32 absmax per 256 blocks (32/16384).
NF4_BITS = {False: 4 + 32 / 64, True: 4 + 8 / 64 + 32 / (64 * 256)}
# 8-bit AdamW: two uint8 states per parameter plus a fp32 absmax per block of 256, per state.
ADAM_8BIT_BYTES = 2 + 2 * FP32 / 256
LIGER_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text", "phi3"}

Rows = list[tuple[str, float]]


@dataclass
class MemoryEstimate:
    """Peak GPU memory of a run: `rows` add up to `total_gb` (GiB)."""

    rows: Rows
    total_gb: float
    gpu_mem_gb: float | None
    summary: str = ""  # what was estimated: model, technique, batch shape
    other_rows: Rows = field(default_factory=list)  # phases that do not coincide with the peak
    notes: list[str] = field(default_factory=list)
    stage: str | None = None  # a pipeline's peak stage
    stages: Rows = field(default_factory=list)  # a pipeline's stages and their totals
    gpus: int = 1  # more than one: every figure is per GPU
    strategy: str = "single"  # how the GPUs share the work (sharding.STRATEGIES), "single" on one

    @property
    def fits(self) -> bool | None:
        return None if self.gpu_mem_gb is None else self.total_gb <= self.gpu_mem_gb

    @property
    def per_gpu(self) -> str:
        """"per GPU, 2 GPUs, fsdp" for a multi-GPU estimate; empty on one GPU."""
        return f"per GPU, {self.gpus} GPUs, {self.strategy}" if self.gpus > 1 else ""

    @property
    def verdict(self) -> str:
        where = f"{self.per_gpu}: " if self.gpus > 1 else ""
        if self.gpu_mem_gb is None:
            return f"{where}needs about {self.total_gb:.1f} GiB (no GPU size given)"
        if self.fits:
            return f"{where}fits with {self.gpu_mem_gb - self.total_gb:.1f} GiB to spare"
        return f"{where}does not fit: needs {self.total_gb:.1f} GiB of {self.gpu_mem_gb:g}"

    def render_table(self) -> str:
        width = max([len(name) for name, _ in self.rows + self.other_rows + self.stages] + [40])
        lines = [self.summary] if self.summary else []
        for name, stage_total in self.stages:
            mark = "  <- peak" if name == self.stage else ""
            lines.append(f"  stage {name:<{width - 6}} {stage_total:6.2f} GiB{mark}")
        if self.stages:
            lines.append(f"peak stage {self.stage}:")
        lines += [f"  {name:<{width}} {gib:6.2f}" for name, gib in self.rows]
        lines.append(f"  {'-' * width} ------")
        total, gpu = (f"total ({self.per_gpu}, GiB)", "memory of each GPU (GiB)") if self.gpus > 1 else (
            "total (GiB)", "GPU memory (GiB)")  # fmt: skip
        lines.append(f"  {total:<{width}} {self.total_gb:6.2f}")
        if self.gpu_mem_gb is not None:
            lines.append(f"  {gpu:<{width}} {self.gpu_mem_gb:6.2f}")
        if self.other_rows:
            lines.append("  not at the peak (another phase of the step):")
            lines += [f"    {name:<{width - 2}} {gib:6.2f}" for name, gib in self.other_rows]
        lines += [f"  note: {note}" for note in self.notes]
        lines.append(f"verdict: {self.verdict}")
        return "\n".join(lines)


def load_shape(cfg: RunConfig, model_config: str | Path | dict[str, Any] | None = None) -> ModelShape:
    """The model's shape: from a given config dict or file, or found by model.name_or_path."""
    if isinstance(model_config, dict):
        return ModelShape.from_config(model_config)
    return ModelShape.from_config(read_model_config(cfg.model.name_or_path, cfg.model.revision, model_config))


def estimate(
    cfg: RunConfig, gpu_mem_gb: float | None = None, model_config: str | Path | dict[str, Any] | None = None
) -> MemoryEstimate:
    """Estimate the peak GPU memory of `cfg`; for a pipeline, of its most demanding stage."""
    shape = load_shape(cfg, model_config)
    return estimate_with_shape(cfg, shape, gpu_mem_gb)


def estimate_with_shape(
    cfg: RunConfig, shape: ModelShape, gpu_mem_gb: float | None = None, strategy: str | None = None
) -> MemoryEstimate:
    """The peak stage's estimate; per GPU under `strategy` (default: the run's, auto resolved) with
    distributed.gpus > 1."""
    why = ""
    if strategy is None:
        strategy, why = run_strategy(cfg, shape, gpu_mem_gb)
    stages = stage_configs(cfg)
    results = [(name, estimate_stage(stage, shape, gpu_mem_gb, strategy)) for name, stage in stages]
    name, peak = max(results, key=lambda item: item[1].total_gb)
    if len(stages) > 1 or cfg.stages:
        peak.stage = name
        peak.stages = [(n, r.total_gb) for n, r in results]
    if why:
        peak.notes.insert(0, why)
    return peak


def resolve_strategy(
    cfg: RunConfig, gpu_mem_gb: float | None, model_config: str | Path | dict[str, Any] | None = None
) -> str:
    """How the run's GPUs share the work: "single" on one GPU, else distributed.strategy with auto resolved:
    ddp when the 1-GPU estimate fits gpu_mem_gb (or gpu_mem_gb is unknown, or the model cannot be sized), fsdp
    otherwise. The worker calls it with the real GPU's memory."""
    if cfg.distributed.gpus <= 1:
        return "single"
    if cfg.distributed.strategy != "auto" or gpu_mem_gb is None:
        return choose_strategy(cfg.distributed.strategy, cfg.distributed.gpus, None, gpu_mem_gb)[0]
    try:
        shape = load_shape(cfg, model_config)
    except ModelError:  # a config.json the memory model cannot read or size: the simple strategy
        return choose_strategy("auto", cfg.distributed.gpus, None, gpu_mem_gb)[0]
    return run_strategy(cfg, shape, gpu_mem_gb)[0]


def run_strategy(cfg: RunConfig, shape: ModelShape, gpu_mem_gb: float | None) -> tuple[str, str]:
    """The run's strategy and the note saying why; auto weighs the whole run (its peak stage) on one GPU."""
    dist = cfg.distributed
    if dist.gpus <= 1 or dist.strategy != "auto" or gpu_mem_gb is None:
        return choose_strategy(dist.strategy, dist.gpus, None, gpu_mem_gb)
    one_gpu = max(estimate_stage(stage, shape, gpu_mem_gb, "single").total_gb for _, stage in stage_configs(cfg))
    return choose_strategy("auto", dist.gpus, one_gpu, gpu_mem_gb)


def estimate_stage(
    cfg: RunConfig, shape: ModelShape, gpu_mem_gb: float | None, strategy: str = "single"
) -> MemoryEstimate:
    """One technique's peak: resident rows + the largest phase + context and allocator slack; per GPU
    under `strategy` when distributed.gpus > 1 ("single": as if on one GPU, whatever gpus says)."""
    train, e = cfg.train, 4 if cfg.model.dtype == "float32" else 2
    if train.technique == "curate":  # generation only, with no adapter and no optimizer: as evaluation answers
        spec = cfg.curate
        found = estimate_eval(cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"enabled": False})}), shape,
                              batch_size=spec.batch_size, prompt_tokens=max(train.max_length - spec.max_completion_length, 64),
                              new_tokens=spec.max_completion_length, gpu_mem_gb=gpu_mem_gb, answering_only=True)  # fmt: skip
        found.summary = found.summary.replace("evaluation", f"curate ({spec.samples} answers per prompt)")
        found.notes.append("a reward_model reward adds its own weights (a reward stage's: see its estimate)")
        return found
    notes: list[str] = []
    gpus = cfg.distributed.gpus if strategy != "single" else 1
    held = _resident(cfg, shape, e)
    if gpus > 1:
        resident = per_device_rows(held, strategy, gpus)
    else:
        resident = whole_rows(held) + [(held.label, trainable_gib(held))]
    if train.technique == "distill":
        resident += teacher_rows(cfg, shape, e, notes)
    act = ActivationModel(
        shape=shape, act_bytes=e, lora_rank=cfg.lora.rank if cfg.lora.enabled else None,
        lora_targets=tuple(lin.name for lin in shape.lora_targets(cfg.lora.target_modules)),
        lora_dropout=cfg.lora.dropout, liger=_liger_on(cfg, shape), kv_repeated=True,
    )  # fmt: skip
    phases = _phases(cfg, shape, act, notes)
    peak_phase = max(phases, key=lambda p: sum(gib for _, gib in phases[p]))
    dynamic = phases[peak_phase]
    slack = ALLOCATOR_SLACK * sum(gib for _, gib in dynamic)
    rows = resident + dynamic + [("CUDA context + cuBLAS workspace", CUDA_CONTEXT_GIB),
                                 ("allocator fragmentation (5% of activations)", slack)]  # fmt: skip
    others = [row for phase, phase_rows in phases.items() if phase != peak_phase for row in phase_rows
              if row not in dynamic]  # fmt: skip
    if not shape.known_layout:
        notes.append(f"model type {shape.model_type!r} is not one smoltrain knows: read as a Llama-like decoder")
    if train.backend != "hf":
        notes.append("for the transformers path; Unsloth (backend auto with Unsloth installed) offloads "
                     "checkpointed activations to the CPU and needs less")  # fmt: skip
    lora = f"LoRA r={cfg.lora.rank}" if cfg.lora.enabled else "full fine-tuning"
    quant = "QLoRA 4-bit" if cfg.quantization.mode == "4bit" else "16-bit base"
    size = f"{shape.total_params / 1e9:.2f}B" if shape.total_params >= 1e8 else f"{shape.total_params / 1e6:.2f}M"
    summary = (f"{cfg.model.name_or_path} ({size} params): {train.technique}, {quant}, {lora}, "
               f"micro-batch {train.micro_batch_size} x {train.max_length} tokens, checkpointing "
               f"{'on' if train.gradient_checkpointing else 'off'}; peak during {peak_phase}")  # fmt: skip
    if gpus > 1:
        summary += f"\n{_per_gpu_heading(cfg, strategy)}"
        notes.append("NCCL's own communication buffers (some hundred MiB per process) are not counted")
    total = sum(gib for _, gib in rows)
    return MemoryEstimate(rows=rows, total_gb=total, gpu_mem_gb=gpu_mem_gb, summary=summary,
                          other_rows=others, notes=notes, gpus=gpus, strategy=strategy)  # fmt: skip


def _per_gpu_heading(cfg: RunConfig, strategy: str) -> str:
    return (f"per GPU, {cfg.distributed.gpus} GPUs, {strategy}: effective batch {effective_batch(cfg)} "
            "(micro_batch_size x grad_accum x gpus); activations are each GPU's own micro-batch")


def _resident(cfg: RunConfig, shape: ModelShape, e: int) -> Resident:
    """What stays on a GPU the whole run: the frozen base as stored (quantized linear layers, 16-bit norms,
    biases, embeddings and head) and the trainables with their grads and optimizer state."""
    layers = shape.num_layers
    dtype = cfg.model.dtype if cfg.model.dtype != "auto" else "bf16"
    matrices = sum(lin.in_features * lin.out_features for lin in shape.linears)
    biases = sum(lin.params - lin.in_features * lin.out_features for lin in shape.linears)
    sixteen_bit = biases + shape.norm_params_per_layer  # bitsandbytes quantizes only the weight matrices
    if cfg.quantization.mode == "4bit":
        bits = NF4_BITS[cfg.quantization.double_quant]
        packed, constants = matrices * 4 / 8, matrices * (bits - 4) / 8  # constants: absmax per block
        label = f"base weights: decoder layers (4-bit {cfg.quantization.quant_type}"
        label += ", double quant)" if cfg.quantization.double_quant else ")"
        # bitsandbytes dequantizes one layer's weight to the compute dtype for each matmul.
        largest = max(lin.in_features * lin.out_features for lin in shape.linears) * e
        buffers = [("4-bit dequantization buffer (largest layer)", float(largest))]
    else:
        packed, constants, buffers = matrices * e, 0.0, []
        label = f"base weights: decoder layers ({dtype})"
    layer = packed + sixteen_bit * e
    base = [(label, layers * layer + shape.hidden_size * e)]
    tied = " + tied LM head" if shape.tied_embeddings and cfg.train.technique != "reward" else ""
    base.append((f"embeddings{tied} ({dtype}, never quantized)", float(shape.embedding_params * e)))
    extra: list[tuple[str, float]] = []
    if cfg.train.technique == "reward":
        # The score head (hidden -> 1) trains in full, in fp32: weight, grad, two Adam states; PEFT
        # keeps the original beside the trained copy (modules_to_save).
        extra.append(("reward head (fp32, trained in full)", float(shape.hidden_size * (4 * FP32 + e))))
    elif shape.head_params:
        base.append((f"LM head ({dtype}, untied, never quantized)", float(shape.head_params * e)))
    eight_bit = cfg.train.optimizer in ("auto", "paged_adamw_8bit", "adamw_8bit")  # auto: paged 8-bit on CUDA
    opt = "8-bit AdamW" if eight_bit else "AdamW"
    if cfg.lora.enabled:
        # PEFT keeps adapters in fp32 (autocast_adapter_dtype) next to bf16/fp16 bases; grads match.
        n, param, grad = shape.lora_params(cfg.lora.target_modules, cfg.lora.rank), FP32, FP32
        name = f"LoRA r={cfg.lora.rank} ({n / 1e6:.1f}M)"
        row = f"{name}: fp32 weights + grads + {opt}"
    else:
        n, param, grad = shape.total_params, 0, e  # the weights themselves are the base rows
        name = f"full fine-tuning ({n / 1e9:.2f}B)"
        row = f"{name}: grads + {opt} state"
    per_layer = n // layers if cfg.lora.enabled else shape.layer_params
    head = shape.head_params if cfg.train.technique != "reward" else 0
    return Resident(
        base=base, quant_state=layers * constants, buffers=buffers, trainable=name, label=row, n_trainable=n,
        param_bytes=param, grad_bytes=grad, optimizer=opt, optimizer_8bit=eight_bit,
        optimizer_bytes=ADAM_8BIT_BYTES if eight_bit else 2 * (param or e),  # torch AdamW: 2 states, param dtype
        compute_bytes=e, extra=extra, layer_bytes=layer + (per_layer * param if cfg.lora.enabled else 0),
        layer_trainable=per_layer, root_bytes=(shape.embedding_params + head + shape.hidden_size) * e,
        largest_module_bytes=max(shape.embedding_params, head) * e,
    )  # fmt: skip


def _weight_rows(cfg: RunConfig, shape: ModelShape, e: int) -> Rows:
    """The frozen base as one GPU stores it (and a reward head): the rows before the trainables."""
    return whole_rows(_resident(cfg, shape, e))


def _liger_on(cfg: RunConfig, shape: ModelShape) -> bool:
    """engine/model.py applies Liger's layer kernels on CUDA for the model types Liger supports."""
    return cfg.train.kernels != "none" and shape.model_type in LIGER_TYPES


def grpo_prompt_length(cfg: RunConfig) -> int:
    """GRPO (and RLOO) reads train.max_length as prompt + completion; TRL itself does not truncate the prompt."""
    return max(cfg.train.max_length - (cfg.group_sampling or cfg.grpo).max_completion_length, 64)


def _distill_lengths(cfg: RunConfig) -> tuple[int, int]:
    """(prompt, completion) tokens of a distillation sequence: train.max_length read as GRPO reads it."""
    completion = cfg.distill.max_completion_length
    return max(cfg.train.max_length - completion, 64), completion


def _phases(cfg: RunConfig, shape: ModelShape, act: ActivationModel, notes: list[str]) -> dict[str, Rows]:
    """The technique's phases, each a list of rows live at the same time (on top of the resident ones)."""
    train, ckpt = cfg.train, cfg.train.gradient_checkpointing
    technique, mb = train.technique, train.micro_batch_size
    if technique in ("grpo", "rloo", "distill"):
        prompt, completion = grpo_prompt_length(cfg), (cfg.group_sampling or cfg.grpo).max_completion_length
        if technique == "distill":
            prompt, completion = _distill_lengths(cfg)
        n_seq, seq, label_tokens = mb, prompt + completion, mb * completion
        notes.append(f"{technique.upper() if technique != 'distill' else 'distillation'} sequences taken as {prompt} prompt "
                     f"+ {completion} completion tokens (train.max_length - {technique}.max_completion_length); longer "
                     "prompts cost more")  # fmt: skip
    else:
        pairs = 2 if technique in ("dpo", "reward") else 1  # chosen and rejected go through as one batch
        n_seq, seq = pairs * mb, train.max_length
        label_tokens = 0 if technique == "reward" else n_seq * seq
        notes.append(f"{n_seq} sequence(s) of {seq} tokens per micro-batch (every sequence padded to max_length: the worst case)")
    gib = 1 / GIB
    saved = act.saved_bytes(n_seq, seq, ckpt) * gib
    other = act.saved_bytes(n_seq, seq, not ckpt) * gib
    notes.append(f"activations {'without' if ckpt else 'with'} checkpointing would be {other:.2f} GiB")
    saved_row = (f"activations ({'checkpointed: layer inputs' if ckpt else 'no checkpointing'})", saved)
    backward = [(f"backward: {'recomputed layer + ' if ckpt else ''}gradients of one layer",
                 act.recompute_bytes(n_seq, seq, ckpt) * gib)]  # fmt: skip
    if label_tokens:
        backward.append(("LM head: TRL chunked log-probs (no full logits)", act.head_bytes(label_tokens) * gib))
        notes.append(f"full logits would take {act.full_logits_bytes(label_tokens) * gib:.2f} GiB; TRL's chunked LM head "
                     "never builds them (nor would Liger's fused cross-entropy)")  # fmt: skip
    # A pass without gradients (DPO's, KTO's, GRPO's and RLOO's reference, KTO's KL batch): one forward's activations.
    no_grad = (act.forward_only_bytes(n_seq, seq) + act.head_bytes(label_tokens, grad=False)) * gib
    if cfg.group_sampling is not None:  # GRPO, RLOO
        phases = {"training": [saved_row, *backward], "generation": _generation_rows(cfg, shape, act)}
        if cfg.group_sampling.beta > 0:  # after generating, the reference scores each micro-batch (adapters off)
            phases["reference pass"] = [(f"{technique.upper()} reference log-probs (adapters off, no grad)", no_grad)]
        if any(r.name == "reward_model" for r in cfg.group_sampling.rewards):
            notes.append("a reward_model reward adds its own weights (a reward stage's: see its estimate)")
        return phases
    if technique == "distill":
        return _distill_phases(cfg, shape, act, saved_row, backward, notes)
    phases = {"backward": [saved_row, *backward]}
    if technique == "dpo":
        if cfg.dpo.precompute_ref_log_probs:
            notes.append("DPO reference log-probs are precomputed before training: no reference pass per step")
        else:
            phases["reference pass"] = [saved_row, ("DPO reference pass (adapters off, no grad)", no_grad)]
    if technique == "kto":
        # TRL scores the KL batch (each prompt with another row's answer) with the policy before the
        # trained forward, so nothing is saved yet; then, with the activations saved, the reference
        # scores the answers and the KL batch one after the other (adapters off).
        phases["KL batch"] = [("KTO KL batch: policy forward, no grad (before the trained forward)", no_grad)]
        phases["reference pass"] = [saved_row, ("KTO reference pass: answers, then KL batch (adapters off)",
                                                no_grad)]  # fmt: skip
        notes.append("KTO: one answer per row (no pairs), plus a KL batch of the same size scored without gradients")
    return phases


def _generation_rows(cfg: RunConfig, shape: ModelShape, act: ActivationModel) -> Rows:
    """GRPO's (and RLOO's) generation: TRL samples the whole generation batch (micro_batch x grad_accum
    completions, num_generations per prompt) in one generate() call, with a growing KV cache
    (distillation's too, one answer per prompt)."""
    train, e = cfg.train, act.act_bytes
    n_seq = train.micro_batch_size * train.grad_accum
    sampled = cfg.group_sampling or cfg.grpo
    prompt, total = grpo_prompt_length(cfg), grpo_prompt_length(cfg) + sampled.max_completion_length
    per_prompt, what = sampled.num_generations, train.technique.upper()
    if train.technique == "distill":
        (prompt, completion), per_prompt, what = _distill_lengths(cfg), 1, "distill"
        total = prompt + completion
    per_token_kv = shape.num_layers * 2 * shape.num_kv_heads * shape.head_dim * e
    kv = n_seq * total * per_token_kv
    # The cache grows by concatenation: one layer's cache exists twice for a moment.
    grow = kv / shape.num_layers
    # Prefill of all prompts at once, then logits of the last position only, fp32, with the
    # softmax and sampling copies beside them.
    prefill = act.forward_only_bytes(n_seq, prompt)
    sampling = 3 * n_seq * shape.vocab_size * FP32
    prompts = n_seq // per_prompt
    return [
        (f"{what} generation: KV cache ({prompts} prompts x {per_prompt} = {n_seq} seqs x {total} tokens)",
         (kv + grow) / GIB),
        (f"{what} generation: prefill + sampling logits", (prefill + sampling) / GIB),
    ]  # fmt: skip


def _distill_phases(cfg: RunConfig, shape: ModelShape, act: ActivationModel, saved_row: tuple[str, float],
                    backward: Rows, notes: list[str]) -> dict[str, Rows]:  # fmt: skip
    """The student samples (generation), then its forward saves activations and the frozen teacher reads the same
    tokens without gradients; TRL's chunked divergence keeps both models' last hidden states of the answers."""
    mb, e = cfg.train.micro_batch_size, act.act_bytes
    prompt, completion = _distill_lengths(cfg)
    teacher = _teacher_shape(cfg, shape, notes)
    t_act = ActivationModel(shape=teacher, act_bytes=e, lora_rank=None, lora_targets=(), lora_dropout=0.0,
                            liger=False, kv_repeated=True)  # fmt: skip
    hidden = mb * completion * teacher.hidden_size * e / GIB
    forward = t_act.forward_only_bytes(mb, prompt + completion) / GIB
    return {
        "teacher forward": [saved_row, ("teacher forward on the sampled answers (no grad)", forward)],
        "training": [saved_row, *backward, ("teacher's last hidden states of the answers", hidden)],
        "generation": _generation_rows(cfg, shape, act),
    }


def teacher_rows(cfg: RunConfig, shape: ModelShape, e: int, notes: list[str]) -> Rows:
    """A distillation teacher's frozen weights, held the whole stage beside the student's: as [quantization]
    stores them (the worker loads it in 4-bit on CUDA when the student is), no adapter, no optimizer."""
    plain = cfg.model_copy(update={"lora": cfg.lora.model_copy(update={"enabled": False})})
    return [(f"teacher {label}", gib) for label, gib in whole_rows(_resident(plain, _teacher_shape(cfg, shape, notes), e))]


def _teacher_shape(cfg: RunConfig, shape: ModelShape, notes: list[str]) -> ModelShape:
    """The teacher's shape: an earlier stage's is the student's own (stages train on one base); a folder, run or
    hub id's from its config.json; one that cannot be read is taken as the student's size, with a note."""
    teacher = cfg.distill.teacher or ""
    if "/" not in teacher and not Path(teacher).expanduser().exists():
        return shape  # a stage of this pipeline (a hub id has a slash)
    try:
        return ModelShape.from_config(read_model_config(teacher))
    except ModelError:
        note = f"the teacher's config.json ({teacher}) could not be read: taken as the student's size"
        notes.extend([] if note in notes else [note])
        return shape


def estimate_eval(cfg: RunConfig, shape: ModelShape, *, batch_size: int, prompt_tokens: int, new_tokens: int,
                  gpu_mem_gb: float | None, answering_only: bool = False) -> MemoryEstimate:  # fmt: skip
    """Evaluation's peak ([eval], smoltrain eval): the model as a chat loads it (4-bit base where the
    run trained in 4-bit, the adapter unmerged), then the larger of answering `batch_size` prompts
    (a KV cache of prompt + answer, the prefill, the last position's logits) and scoring a batch
    of whole sequences at once (harness loglikelihood tasks: logits at every position, fp32)."""
    e = 4 if cfg.model.dtype == "float32" else 2
    as_policy = cfg.model_copy(update={"train": cfg.train.model_copy(update={"technique": "sft"})})
    rows = _weight_rows(as_policy, shape, e)
    if cfg.lora.enabled:
        n = shape.lora_params(cfg.lora.target_modules, cfg.lora.rank)
        rows.append((f"LoRA r={cfg.lora.rank} adapter ({n / 1e6:.1f}M, fp32)", n * FP32 / GIB))
    act = ActivationModel(shape=shape, act_bytes=e, lora_rank=cfg.lora.rank if cfg.lora.enabled else None,
                          lora_targets=tuple(lin.name for lin in shape.lora_targets(cfg.lora.target_modules)),
                          lora_dropout=0.0, liger=False, kv_repeated=True)  # fmt: skip
    seq = prompt_tokens + new_tokens
    kv = batch_size * seq * shape.num_layers * 2 * shape.num_kv_heads * shape.head_dim * e
    answering = [(f"answering: KV cache ({batch_size} prompts x {seq} tokens)", kv / GIB),
                 ("answering: prefill + last-position logits",
                  (act.forward_only_bytes(batch_size, prompt_tokens) + 3 * batch_size * shape.vocab_size * FP32) / GIB)]  # fmt: skip
    scoring = [(f"scoring: logits of {batch_size} x {seq} tokens (fp32, loglikelihood tasks)",
                (act.forward_only_bytes(batch_size, seq) + batch_size * seq * shape.vocab_size * FP32) / GIB)]  # fmt: skip
    dynamic, other = (answering, scoring) if sum(g for _, g in answering) >= sum(g for _, g in scoring) else (scoring, answering)
    if answering_only:  # sampling answers (curate): no whole-sequence scoring pass
        dynamic, other = answering, []
    rows += dynamic + [("CUDA context + cuBLAS workspace", CUDA_CONTEXT_GIB),
                       ("allocator fragmentation (5% of activations)", ALLOCATOR_SLACK * sum(g for _, g in dynamic))]  # fmt: skip
    quant = "4-bit base" if cfg.quantization.mode == "4bit" else "16-bit base"
    summary = f"{cfg.model.name_or_path}: evaluation, {quant}, batch {batch_size} x {seq} tokens"
    return MemoryEstimate(rows=rows, total_gb=sum(g for _, g in rows), gpu_mem_gb=gpu_mem_gb, summary=summary,
                          other_rows=other)  # fmt: skip
