"""On-policy distillation: the student samples answers, a frozen teacher scores every token, through TRL's
DistillationTrainer.

For each prompt the student (the run's LoRA policy) samples one answer; the teacher reads the same tokens
and the student is pulled towards the teacher's next-token distribution at every position of its own
answer with TRL's generalized JSD (distill.beta: 0 forward KL, 1 reverse KL). The student learns from its
own mistakes, where the teacher says what it would have said instead, which SFT on the teacher's answers
never shows it. TRL logs the divergence as `loss`, the student's per-token `entropy` and the answers'
lengths (`completions/mean_length`, `completions/clipped_ratio`).

The teacher (distill.teacher) is an earlier stage of the pipeline, a run folder, a model folder or a hub
id. `check_teachers` runs before any weights load: a stage must run earlier and train a policy; a folder
must hold a language model (external_rewards.model_folder); its vocabulary must be the student's, token
for token, since the loss compares the two distributions id by id. `load_teacher` loads it frozen, in
eval mode, in 4-bit on CUDA with the run's [quantization] (plain on the CPU, where 4-bit is slow and only
the student needs it to be trained as on a GPU); an adapter (a run's final/) is put on its base as it was
trained: merged into plain weights, or kept beside 4-bit ones (merging into 4-bit would round it away).

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine.data import PreparedData
from smoltrain.engine.data.load import hub_offline_context, looks_like_path
from smoltrain.engine.model import LoadedModel, from_pretrained_kwargs, load_base_config, resolve_dtype
from smoltrain.engine.techniques.common import StageContext, training_kwargs
from smoltrain.engine.techniques.external_rewards import LANGUAGE_MODEL, model_folder
from smoltrain.errors import ConfigError, ModelError

FACTS = facts("distill")
KEY = "distill.teacher"
_SAME_FAMILY = "pick a teacher with the student's tokenizer: a larger model of the same family (Qwen3-4B for Qwen3-0.6B)"


def describe(cfg: RunConfig, data: PreparedData) -> dict[str, str]:
    d = cfg.distill
    return {"loss_on": f"on-policy distillation from {d.teacher} (generalized JSD, beta {d.beta:g}: "
                       f"{_divergence(d.beta)}), the student's own answers"}  # fmt: skip


def _divergence(beta: float) -> str:
    return {0.0: "forward KL", 1.0: "reverse KL", 0.5: "JSD"}.get(beta, "between forward and reverse KL")


def build_trainer(cfg: RunConfig, loaded: LoadedModel, data: PreparedData, ctx: StageContext) -> Any:
    from trl import DistillationConfig, DistillationTrainer

    assert cfg.distill.teacher is not None  # RunConfig's rules ask for one
    teacher = load_teacher(cfg, _teacher_folder(cfg.distill.teacher, ctx), loaded.device)
    d = cfg.distill
    args = DistillationConfig(
        **training_kwargs(cfg, loaded, ctx, has_eval=data.eval is not None),
        max_completion_length=d.max_completion_length,
        temperature=d.temperature,
        top_p=d.top_p,
        beta=d.beta,
    )
    return DistillationTrainer(
        model=loaded.model,
        teacher_model=teacher,
        args=args,
        train_dataset=data.train,
        eval_dataset=data.eval,
        processing_class=loaded.tokenizer,
        callbacks=ctx.callbacks,
    )


# --------------------------------------------------------------------------- before any weights load


def check_teachers(stages: list[tuple[str, RunConfig]]) -> None:
    """Every distillation stage's teacher, as far as it can be told without weights: a ConfigError or
    ModelError naming distill.teacher when it is not there, not a language model, or speaks another vocabulary."""
    names = [name for name, _ in stages]
    for i, (name, stage) in enumerate(stages):
        ref = stage.distill.teacher
        if stage.train.technique != "distill" or ref is None:
            continue
        if ref in names:
            _check_stage_teacher(ref, name, names[:i], dict(stages))
            continue  # an earlier stage of this run trains on the student's own base and tokenizer
        _check_vocabulary(ref, _source(ref, stage), stage)


def _check_stage_teacher(ref: str, name: str, earlier: list[str], configs: dict[str, RunConfig]) -> None:
    if ref not in earlier:
        raise ConfigError(f"{KEY} = {ref!r}: stage {ref!r} does not run before stage {name!r}",
                          hint="name a stage that comes earlier in [[stages]], whose model is then the teacher")  # fmt: skip
    technique = configs[ref].train.technique
    if not facts(technique).policy:
        raise ConfigError(f"{KEY} = {ref!r}: stage {ref!r} is a {technique} stage, it trains no language model",
                          hint="name a policy stage (sft, dpo, kto, grpo, ...) or a model")  # fmt: skip


def _source(ref: str, stage: RunConfig) -> tuple[str, str]:
    """(where its config.json is, where its tokenizer is): a folder's (its adapter's base for the config), or the hub id."""
    if looks_like_path(ref) or Path(ref).expanduser().exists():
        folder, adapter = model_folder(Path(ref).expanduser(), "distill", key="teacher", kind=LANGUAGE_MODEL)
        if adapter is None:
            return str(folder), str(folder)
        base = str(adapter["base_model_name_or_path"])
        return base, str(folder) if (folder / "tokenizer_config.json").is_file() else base
    load_base_config(ref, None, stage.model.trust_remote_code, KEY)  # a hub id: there, or cached
    return ref, ref


def _check_vocabulary(ref: str, source: tuple[str, str], stage: RunConfig) -> None:
    from transformers import AutoTokenizer

    from smoltrain.engine.model import load_tokenizer
    from smoltrain.memory.shapes import read_model_config

    config_source, tokenizer_source = source
    config = load_base_config(config_source, None, stage.model.trust_remote_code, KEY).get_text_config()
    try:
        with hub_offline_context(tokenizer_source):
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_source, trust_remote_code=stage.model.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{KEY} = {ref!r}: cannot load its tokenizer from {tokenizer_source} ({exc})",
                         hint="the teacher's folder needs its tokenizer files, as save_pretrained writes them") from None  # fmt: skip
    student_config = read_model_config(stage.model.name_or_path, stage.model.revision)  # a past run: its base's
    student_rows = student_config.get("vocab_size") or student_config.get("text_config", {}).get("vocab_size")
    theirs, ours = tokenizer.get_vocab(), load_tokenizer(stage.model).get_vocab()
    if theirs != ours:
        differing = sorted(set(theirs.items()) ^ set(ours.items()), key=lambda item: item[1])[:1]
        example = f"; e.g. {differing[0][0]!r} is token {differing[0][1]} in only one of them" if differing else ""
        raise ConfigError(f"{KEY} = {ref!r}: its tokenizer is not the student's ({len(theirs)} tokens vs "
                          f"{len(ours)}{example}): distillation compares the two models token by token",
                          hint=_SAME_FAMILY)  # fmt: skip
    if config.vocab_size != student_rows:
        raise ConfigError(f"{KEY} = {ref!r}: its vocabulary has {config.vocab_size} rows, the student's "
                          f"{student_rows}: distillation compares their full next-token distributions",
                          hint=_SAME_FAMILY)  # fmt: skip


# --------------------------------------------------------------------------- the teacher itself


def _teacher_folder(ref: str, ctx: StageContext) -> str:
    """A stage's result or a run's final/ (a folder), else the model folder or hub id as given."""
    try:
        return str(ctx.resolve_model(ref))
    except ConfigError:
        return ref  # not a stage, not a folder: a hub id, checked by check_teachers already


def load_teacher(cfg: RunConfig, ref: str, device: str) -> Any:
    """The teacher model: frozen, in eval mode, on the student's device; 4-bit on CUDA as [quantization] says."""
    from transformers import AutoModelForCausalLM

    adapter: dict[str, Any] | None = None
    source = ref
    if Path(ref).expanduser().is_dir():
        folder, adapter = model_folder(Path(ref).expanduser(), "distill", key="teacher", kind=LANGUAGE_MODEL)
        source = str(adapter["base_model_name_or_path"]) if adapter is not None else str(folder)
    quantize = device == "cuda" and cfg.quantization.mode == "4bit"
    kwargs = from_pretrained_kwargs(cfg, device, resolve_dtype(cfg.model.dtype, device), quantize=quantize)
    kwargs["revision"] = None  # model.revision is the student's
    try:
        with warnings.catch_warnings(), hub_offline_context(source):
            warnings.simplefilter("ignore", FutureWarning)
            model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
            if adapter is not None:
                from peft import PeftModel

                model = PeftModel.from_pretrained(model, str(folder))
                if not quantize:
                    model = model.merge_and_unload()
    except (OSError, ValueError) as exc:
        raise ModelError(f"{KEY} = {ref!r}: cannot load the teacher from {source} ({exc})",
                         hint="check that the folder (and the base model its adapter names) is complete") from None  # fmt: skip
    model.requires_grad_(False)
    model.config.use_cache = False  # it scores whole answers in one forward: no cache
    return model.eval()
