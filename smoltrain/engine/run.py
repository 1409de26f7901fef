"""One run, start to finish: data -> model -> technique -> train -> save, for one stage or a pipeline.

Every stage's data is read and checked before any model is loaded, so a broken dataset fails in
seconds, not after a download or an earlier stage's hour of training.

Pipelines: stages run in order. A policy stage (sft, dpo, grpo) that is followed by another
stage has its LoRA adapter *merged* into a 16-bit copy of its base (`stages/<name>/merged/`);
the next stage loads that copy (in 4-bit again if asked) and trains a fresh adapter on it. So
DPO's reference ("adapters off") is the SFT model, not the raw base, and no adapter is ever
applied twice. A reward stage starts from the current policy too but does not replace it; a
later GRPO stage can score with it (`[[grpo.rewards]] name = "reward_model", model = "<stage>"`).

Layout: a single stage writes `checkpoints/` and `final/` in the run folder; a pipeline writes
`stages/<name>/{checkpoints,final,merged}` and copies the last stage's `final/` to `final/`. A stage
that ran to its last step (and was merged, where needed) gets `stage-done.json`.

Resuming (`resume=True`): done stages are skipped (a later stage starts from the merged model they
left), and the first stage not done continues from its last *complete* checkpoint (see
checkpoints.py) through transformers' `resume_from_checkpoint`, which loads the saved adapter into
the freshly made LoRA adapter of the same name: the adapter is never stacked. The optimizer,
scheduler, RNG and data position come back with it, so the run ends at the same step.

Out of GPU memory (in the preflight or later): with `train.auto_fit` the stage is rebuilt with half
the micro-batch and twice the accumulation (the same effective batch) and continues from its last
complete checkpoint; the new sizes are kept in `fit.json` for a later resume. Otherwise, or at
micro-batch 1, a FitError says where it ran out and what would fit.

Runs in the worker process. Never imports textual.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType

import torch

from smoltrain.config.load import stage_configs
from smoltrain.config.schema import RunConfig
from smoltrain.engine import preflight
from smoltrain.engine.callbacks import EventCallback
from smoltrain.engine.checkpoints import mark_stage_done, resume_point, stage_done_step
from smoltrain.engine.control import CONTROL_DIR, StopFlag
from smoltrain.engine.data import PreparedData, prepare_datasets
from smoltrain.engine.events import (
    Emit,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
    Warning,
)
from smoltrain.engine.model import load_model, load_tokenizer, merge_adapter
from smoltrain.engine.techniques import dpo, grpo, reward, sft
from smoltrain.engine.techniques.common import StageContext
from smoltrain.errors import ConfigError

TECHNIQUES: dict[str, ModuleType] = {"sft": sft, "reward": reward, "dpo": dpo, "grpo": grpo}
POLICY_TECHNIQUES = {"sft", "dpo", "grpo"}  # their result is the model the next stage starts from
FIT_FILE = "fit.json"  # micro_batch_size and grad_accum chosen by auto_fit, for a resume


@dataclass
class StageResult:
    final_dir: Path
    step: int
    completed: bool  # ran to its last step (not stopped on request)


class _StageOutOfMemory(Exception):
    """CUDA ran out of memory in a stage; `where` is "in the preflight" or "at step N"."""

    def __init__(self, where: str) -> None:
        super().__init__(where)
        self.where = where


def run(cfg: RunConfig, run_dir: Path, emit: Emit, stop: StopFlag, resume: bool = False) -> None:
    started = time.time()
    stages = stage_configs(cfg)
    is_pipeline = bool(cfg.stages)
    if cfg.model.trust_remote_code:
        emit(Warning(message=f"model.trust_remote_code = true: Python code from {cfg.model.name_or_path} will run",
                     hint="only for model repositories you trust"))  # fmt: skip
    datasets = prepare_stage_data(cfg, stages, emit)

    policy = cfg.model.name_or_path
    finished: dict[str, Path] = {}
    result: StageResult | None = None
    run_started: dict | None = _run_started_fields(run_dir, cfg, [n for n, _ in stages])
    for index, ((name, stage_cfg), data) in enumerate(zip(stages, datasets)):
        stage_dir = run_dir / "stages" / name if is_pipeline else run_dir
        is_policy_step = stage_cfg.train.technique in POLICY_TECHNIQUES and index < len(stages) - 1
        done_step = stage_done_step(stage_dir) if resume else None
        if done_step is not None:
            emit(Warning(message=f"resuming: stage {index + 1} ({name}) finished before, at step {done_step}; skipped"))
            result = StageResult(final_dir=stage_dir / "final", step=done_step, completed=True)
        else:
            stage_cfg = stage_cfg.model_copy(update={"model": stage_cfg.model.model_copy(update={"name_or_path": policy})})
            result = _run_stage_fitting(
                index, stage_cfg, data, stage_dir, emit, stop, run_started=run_started, resume=resume,
                resolve_model=partial(_resolve_model, finished),
            )  # fmt: skip
            run_started = None
            if not result.completed:
                break
            if is_policy_step:
                merge_adapter(stage_cfg, result.final_dir, stage_dir / "merged")
            mark_stage_done(stage_dir, result.step)
        finished[name] = result.final_dir
        if is_policy_step:
            policy = str(stage_dir / "merged")
        if stop.requested:
            break

    completed = result is not None and result.completed and len(finished) == len(stages)
    final_dir = result.final_dir if result else None
    if is_pipeline and final_dir is not None and completed:
        shutil.copytree(final_dir, run_dir / "final", dirs_exist_ok=True)
        final_dir = run_dir / "final"
    emit(
        RunFinished(
            status="completed" if completed else "stopped",
            step=result.step if result else 0,
            final_dir=str(final_dir) if final_dir else None,
            duration_s=time.time() - started,
        )
    )


def prepare_stage_data(cfg: RunConfig, stages: list[tuple[str, RunConfig]], emit: Emit) -> list[PreparedData]:
    """Every stage's data, fitted to the base model's chat template (later stages' models are merges of
    it and keep its tokenizer), before any weights load; what was changed to fit is said once."""
    tokenizer = load_tokenizer(cfg.model)
    prepared = []
    for _, stage in stages:
        assert stage.data is not None  # stage_configs gives every stage its data
        data = prepare_datasets(stage.data, stage.train.technique, seed=stage.train.seed, tokenizer=tokenizer,
                                loss_on=stage.sft.loss_on, model=cfg.model.name_or_path)  # fmt: skip
        for report in filter(None, (data.report, data.eval_report)):
            for fix, rows in report.fixed.items():
                emit(Warning(message=f"{report.source}: {fix}: {rows} of {report.rows_kept} rows",
                             hint="the model's own chat template has no place for a system turn there"))  # fmt: skip
        prepared.append(data)
    return prepared


def _run_stage_fitting(
    index: int, cfg: RunConfig, data: PreparedData, stage_dir: Path, emit: Emit, stop: StopFlag,
    run_started: dict | None, resume: bool, resolve_model: partial[Path],
) -> StageResult:  # fmt: skip
    """Run a stage; on CUDA OOM either retry it with a smaller micro-batch (auto_fit) or explain."""
    cfg = _with_saved_fit(cfg, stage_dir)
    while True:
        try:
            return _run_stage(index, cfg, data, stage_dir, emit, stop, run_started, resume, resolve_model)
        except _StageOutOfMemory as oom:
            where = oom.where
        # Out of the except block: the failed attempt's frames (and its tensors) are gone before the retry.
        _release_memory()
        smaller = preflight.halved_batch(cfg) if cfg.train.auto_fit else None
        if smaller is None:
            raise preflight.out_of_memory_error(cfg, where)
        old, new = cfg.train, smaller.train
        emit(Warning(message=f"out of GPU memory {where}: retrying with micro_batch_size {new.micro_batch_size} and "
                             f"grad_accum {new.grad_accum} (was {old.micro_batch_size} x {old.grad_accum}; same "
                             "effective batch)", hint="train.auto_fit is on"))  # fmt: skip
        # RunStarted went out before the preflight; the retry continues from the last complete checkpoint.
        cfg, resume, run_started = smaller, True, None
        (stage_dir / FIT_FILE).write_text(json.dumps({"micro_batch_size": new.micro_batch_size, "grad_accum": new.grad_accum}))


def _with_saved_fit(cfg: RunConfig, stage_dir: Path) -> RunConfig:
    """A resumed stage keeps the batch shape auto_fit found, so its checkpoints line up."""
    path = stage_dir / FIT_FILE
    if not path.is_file():
        return cfg
    fit = json.loads(path.read_text())
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=fit)})


def _run_stage(
    index: int,
    cfg: RunConfig,
    data: PreparedData,
    stage_dir: Path,
    emit: Emit,
    stop: StopFlag,
    run_started: dict | None,
    resume: bool,
    resolve_model: partial[Path],
) -> StageResult:
    technique_name = cfg.train.technique
    technique = TECHNIQUES[technique_name]
    point = resume_point(stage_dir / "checkpoints") if resume else None
    for dropped in point.dropped if point else []:
        emit(Warning(message=f"skipped incomplete checkpoint {dropped} (written when the run was cut off)"))
    checkpoint = point.checkpoint if point else None
    tokenizer = load_tokenizer(cfg.model)
    try:
        loaded = load_model(cfg, tokenizer)
    except torch.cuda.OutOfMemoryError:
        # A smaller micro-batch cannot help here: the weights alone do not fit.
        raise preflight.out_of_memory_error(cfg, "while loading the model") from None
    loaded.active["loss_on"] = technique.loss_target(cfg, data)
    if technique is sft and (text := sft.text_format(data)):
        loaded.active["text"] = text
    if run_started is not None:
        emit(RunStarted(**run_started, device=loaded.device, dtype=str(loaded.dtype).removeprefix("torch."),
                        active=loaded.active, trainable_params=loaded.trainable_params,
                        total_params=loaded.total_params,
                        resumed_from=str(checkpoint) if checkpoint else None))  # fmt: skip

    ctx = StageContext(
        output_dir=stage_dir / "checkpoints",
        callbacks=[EventCallback(emit, stop, stage=index, control_dir=_control_dir(stage_dir))],
        emit=emit,
        stage=index,
        resolve_model=resolve_model,
    )
    trainer = technique.build_trainer(cfg, loaded, data, ctx)
    _adapters_in_float32_when_computing_in_float32(trainer.model, loaded.dtype)
    preflight.check_rows(trainer, len(data.train), len(data.eval) if data.eval is not None else 0, cfg, emit)
    emit(
        StageStarted(
            stage=index,
            technique=technique_name,
            model=cfg.model.name_or_path,
            active=loaded.active,
            max_steps=_planned_steps(cfg, len(trainer.get_train_dataloader())),
            train_rows=len(data.train),
            eval_rows=len(data.eval) if data.eval is not None else 0,
            data=data.report.summary(),
        )
    )
    where = "in the preflight (one step on the longest batch)"
    try:
        preflight.preflight(trainer, cfg)
        where = "during training"
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except torch.cuda.OutOfMemoryError:
        if where == "during training":
            where = f"at step {trainer.state.global_step + 1}"
        del trainer, loaded
        raise _StageOutOfMemory(where) from None

    final_dir = stage_dir / "final"
    trainer.save_model(str(final_dir))
    loaded.tokenizer.save_pretrained(str(final_dir))
    step = trainer.state.global_step
    completed = step >= trainer.state.max_steps
    emit(StageFinished(stage=index, technique=technique_name, step=step, output_dir=str(final_dir)))
    del trainer, loaded
    _release_memory()
    return StageResult(final_dir=final_dir, step=step, completed=completed)


def _control_dir(stage_dir: Path) -> Path:
    """runs/<name>/control, where a front end drops requests such as save_now (the same for every stage)."""
    run_dir = stage_dir.parent.parent if stage_dir.parent.name == "stages" else stage_dir
    return run_dir / CONTROL_DIR


def _adapters_in_float32_when_computing_in_float32(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """TRL casts the trainable parameters of a 4-bit model to bfloat16 (the QLoRA recipe, right under
    bf16 autocast on a GPU). In a float32 run (the CPU) bf16 adapters round most AdamW updates away,
    and the demo's loss diverged after ~25 steps; float32 adapters train smoothly."""
    if dtype != torch.float32:
        return
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def _run_started_fields(run_dir: Path, cfg: RunConfig, stage_names: list[str]) -> dict:
    return {"run_dir": str(run_dir), "name": run_dir.name, "model": cfg.model.name_or_path, "stages": stage_names}


def _resolve_model(finished: dict[str, Path], ref: str) -> Path:
    """A reward model named by an earlier stage of this run, or by a run folder or model folder."""
    if ref in finished:
        return finished[ref]
    path = Path(ref).expanduser()
    for candidate in (path / "final", path):
        if (candidate / "config.json").exists() or (candidate / "adapter_config.json").exists():
            return candidate
    raise ConfigError(
        f"grpo.rewards: reward model {ref!r} is neither an earlier stage ({', '.join(finished) or 'none so far'}) "
        "nor a folder with a trained model",
        hint="name a reward stage that runs before this one, or a run folder such as runs/my-rm",
    )


def _planned_steps(cfg: RunConfig, batches_per_epoch: int) -> int:
    if cfg.train.max_steps:
        return cfg.train.max_steps
    return max(1, math.ceil(batches_per_epoch / cfg.train.grad_accum * cfg.train.epochs))


def _release_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
