"""One run, start to finish: data -> model -> technique -> train -> save, for one stage or a pipeline.

Every stage's data is read and checked before any model is loaded, so a broken dataset fails in
seconds, not after a download or an earlier stage's hour of training.

Pipelines: stages run in order. A policy stage (sft, dpo, kto, grpo, rloo) that is followed by another
stage has its LoRA adapter *merged* into a 16-bit copy of its base (`stages/<name>/merged/`);
the next stage loads that copy (in 4-bit again if asked) and trains a fresh adapter on it. So
DPO's reference ("adapters off") is the SFT model, not the raw base, and no adapter is ever
applied twice. A reward stage starts from the current policy too but does not replace it; a
later GRPO or RLOO stage can score with it (`[[grpo.rewards]] name = "reward_model", model = "<stage>"`).

A past run as the model (`model.name_or_path = "runs/sft-1"`, smoltrain/pastrun.py): `starting_model`
merges its adapter into a 16-bit copy of its base in the run folder's `start-model/` once, with the
same `merge_adapter` the stages use, and the first stage trains a fresh adapter on that.

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

More than one process (engine/distributed.py): every rank runs this same loop and trains each stage
together; what writes the run folder's shared files (the merge, the stage-done mark, the samples, the
evaluation, the final copy) runs on rank 0 while the others wait, and every rank reads the data and
a resume point only after rank 0 has (it may write the datasets cache or drop a broken checkpoint).

Runs in the worker process. Never imports textual.
"""

from __future__ import annotations

import gc
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from smoltrain.config.load import stage_configs
from smoltrain.config.schema import DataSection, RunConfig
from smoltrain.config.techniques import facts
from smoltrain.engine import distributed, preflight, samples
from smoltrain.engine.callbacks import EventCallback
from smoltrain.engine.checkpoints import (
    mark_stage_done,
    resume_point,
    stage_done_step,
    step_of,
    trained_to_the_end,
)
from smoltrain.engine.control import StopFlag
from smoltrain.engine.data import PreparedData, prepare_datasets
from smoltrain.engine.trackers import check_trackers, tracking_arguments
from smoltrain.engine.evaluate import RunEvaluation
from smoltrain.engine.events import (
    Emit,
    RunFinished,
    RunStarted,
    StageFinished,
    StageStarted,
    Warning,
)
from smoltrain.engine.model import load_model, load_tokenizer, merge_adapter
from smoltrain.engine.curate import curate
from smoltrain.engine.techniques import distill, dpo, grpo, kto, reward, rloo, sft
from smoltrain.engine.techniques.base import Technique
from smoltrain.engine.techniques.common import StageContext
from smoltrain.errors import ConfigError, DataError
from smoltrain.pastrun import past_run
from smoltrain.rundir import RunDir, StagePaths

TECHNIQUES: dict[str, Technique] = {"sft": sft, "reward": reward, "dpo": dpo, "kto": kto, "grpo": grpo,
                                    "rloo": rloo, "distill": distill}
# Left in a checkpoint for resuming, not part of a trained model's folder.
_RESUME_ONLY = {"optimizer.pt", "scheduler.pt", "trainer_state.json", "training_args.bin", "smoltrain-complete.json"}


@dataclass(frozen=True)
class StageJob:
    """One stage to train, and what it reports to: the run loop's one argument to `_run_stage`."""

    index: int
    name: str  # the stage's name ([[stages]] name; the technique for a single-stage run)
    cfg: RunConfig  # the stage's own config, its model the current policy
    data: PreparedData
    paths: StagePaths  # its checkpoints/, final/, merged/, stage-done.json, fit.json
    run: RunDir
    emit: Emit
    stop: StopFlag
    resume: bool
    resolve_model: Callable[[str], Path]  # an earlier stage's name or a folder -> a trained model
    run_started: dict | None = None  # the run_started fields, for the first stage this worker trains
    starts_from: str = ""  # what stage_started says it starts from: its model, or the past run it comes from
    strategy: str = "single"  # how the processes share the work (distributed.resolve_strategy)

    @property
    def technique(self) -> Technique:
        return TECHNIQUES[self.cfg.train.technique]


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
    run = RunDir(run_dir)
    stages = stage_configs(cfg)
    is_pipeline = bool(cfg.stages)
    if cfg.model.trust_remote_code:
        emit(Warning(message=f"model.trust_remote_code = true: Python code from {cfg.model.name_or_path} will run",
                     hint="only for model repositories you trust"))  # fmt: skip
    check_trackers(cfg)  # [logging]'s packages, before the data and the model load
    strategy = distributed.resolve_strategy(cfg)
    with distributed.main_first():
        datasets = prepare_stage_data(cfg, stages, emit)
    _check_start_from(stages)
    distill.check_teachers(stages)  # a distillation teacher that is missing or speaks another vocabulary: before any weights
    evaluation = RunEvaluation(run, cfg, emit) if cfg.eval is not None and distributed.is_main() else None
    if evaluation is not None:
        evaluation.check()  # its tasks, prompts and judge, before any training

    with distributed.main_first():
        policy, starts_from = starting_model(cfg, run)
    finished: dict[str, Path] = {}
    merged: dict[str, str] = {}  # policy stage -> its merged model, for a later stage's train.start_from
    result: StageResult | None = None
    run_started: dict | None = _run_started_fields(run, starts_from, [n for n, _ in stages], strategy)
    for index, ((name, stage_cfg), data) in enumerate(zip(stages, datasets)):
        paths = run.stage(name if is_pipeline else None)
        is_policy_step = facts(stage_cfg.train.technique).policy and index < len(stages) - 1
        done_step = stage_done_step(paths.done) if resume else None
        if done_step is not None:
            emit(Warning(message=f"resuming: stage {index + 1} ({name}) finished before, at step {done_step}; skipped"))
            result = StageResult(final_dir=paths.final if facts(stage_cfg.train.technique).trains else paths.curated,
                                 step=done_step, completed=True)  # fmt: skip
        else:
            start = merged.get(stage_cfg.train.start_from or "", policy)
            stage_cfg = stage_cfg.model_copy(update={"model": stage_cfg.model.model_copy(update={"name_or_path": start})})
            if data is None:  # data.curated: what an earlier curate stage kept, read now that it is written
                with distributed.main_first():
                    data = _curated_data(cfg, stage_cfg, run, emit)
            job = StageJob(index, name, stage_cfg, data, paths, run, emit, stop, resume,
                           partial(_resolve_model, finished), run_started=run_started,
                           starts_from=starts_from if index == 0 else start, strategy=strategy)  # fmt: skip
            result = _run_stage_fitting(job) if facts(stage_cfg.train.technique).trains else _run_curate(job)
            run_started = None
            if not result.completed:
                break
            distributed.main_only(partial(_finish_stage, stage_cfg, result, paths, merge=is_policy_step))
        finished[name] = result.final_dir
        if is_policy_step:
            policy = merged[name] = str(paths.merged)
        if stop.requested:
            break
        if evaluation is not None:
            evaluation.after_stage(name)
        distributed.wait()  # the other ranks wait out rank 0's evaluation
    if evaluation is not None:
        evaluation.finish()

    completed = result is not None and result.completed and len(finished) == len(stages)
    final_dir = result.final_dir if result else None
    if is_pipeline and final_dir is not None and completed and facts(stages[-1][1].train.technique).trains:
        distributed.main_only(partial(shutil.copytree, final_dir, run.final, dirs_exist_ok=True))
        final_dir = run.final
    emit(
        RunFinished(
            status="completed" if completed else "stopped",
            step=result.step if result else 0,
            final_dir=str(final_dir) if final_dir else None,
            duration_s=time.time() - started,
        )
    )


def _check_start_from(stages: list[tuple[str, RunConfig]]) -> None:
    """train.start_from names an earlier policy stage (its merged model is what the stage loads)."""
    for i, (name, stage) in enumerate(stages):
        start = stage.train.start_from
        earlier = [n for n, c in stages[:i] if facts(c.train.technique).policy]
        if start is not None and start not in earlier:
            raise ConfigError(f"train.start_from = {start!r} (stage {name}): not a policy stage that runs before it",
                              hint=f"name one of: {', '.join(earlier) or 'none (it is the first stage)'}")  # fmt: skip


def _finish_stage(cfg: RunConfig, result: StageResult, paths: StagePaths, merge: bool) -> None:
    """A trained stage's merged model (when a later stage starts from it), then its done mark."""
    if merge:
        merge_adapter(cfg, result.final_dir, paths.merged)
    mark_stage_done(paths.done, result.step)


def prepare_stage_data(cfg: RunConfig, stages: list[tuple[str, RunConfig]], emit: Emit) -> list[PreparedData | None]:
    """Every stage's data, fitted to the base model's chat template (later stages' models are merges of
    it and keep its tokenizer), before any weights load; what was changed to fit is said once. A stage
    that trains on a curate stage's output (data.curated) gets None: its data is read when it starts."""
    tokenizer = load_tokenizer(cfg.model)
    prepared: list[PreparedData | None] = []
    for _, stage in stages:
        assert stage.data is not None  # stage_configs gives every stage its data
        prepared.append(None if stage.data.curated else _prepare(cfg, stage, stage.data, tokenizer, emit))
    return prepared


def _prepare(cfg: RunConfig, stage: RunConfig, section: DataSection, tokenizer: Any, emit: Emit) -> PreparedData:
    data = prepare_datasets(section, stage.train.technique, seed=stage.train.seed, tokenizer=tokenizer,
                            loss_on=stage.sft.loss_on, model=cfg.model.name_or_path,
                            rewards=stage.technique_rewards)  # fmt: skip
    for report in filter(None, (data.report, data.eval_report)):
        for fix, rows in report.fixed.items():
            emit(Warning(message=f"{report.source}: {fix}: {rows} of {report.rows_kept} rows",
                         hint="the model's own chat template has no place for a system turn there"))  # fmt: skip
    return data


def _curated_data(cfg: RunConfig, stage: RunConfig, run: RunDir, emit: Emit) -> PreparedData:
    """A stage's data.curated: the best answers (sft) or the pairs its curate stage wrote. Nothing kept is a
    user error naming the curate stage and its thresholds."""
    assert stage.data is not None and stage.data.curated is not None
    source = stage.data.curated
    path = run.stage(source).curated_file(stage.train.technique)
    rows = sum(1 for line in path.open(encoding="utf-8") if line.strip()) if path.is_file() else 0
    if not rows:
        what = "best answers at or above curate.min_score" if path.name == "sft.jsonl" else \
            "pairs whose answers scored apart by more than curate.min_margin"
        raise DataError(f"data.curated: curate stage {source!r} kept no {what} ({path})",
                        hint="lower its curate.min_score or curate.min_margin, raise curate.samples, or train the "
                             "model more before curating; summary.json there has the counts")  # fmt: skip
    section = stage.data.model_copy(update={"path": str(path), "curated": None, "format": "auto"})
    return _prepare(cfg, stage, section, load_tokenizer(cfg.model), emit)


def _run_curate(job: StageJob) -> StageResult:
    """A curate stage (engine/curate.py) on rank 0; the other ranks wait for its files."""
    outcome = distributed.main_only(partial(curate, job))
    stopped, = distributed.agree(outcome is not None and not outcome[1])
    return StageResult(final_dir=job.paths.curated, step=outcome[0] if outcome else 0, completed=not stopped)


def _run_stage_fitting(job: StageJob) -> StageResult:
    """Run a stage; on CUDA OOM either retry it with a smaller micro-batch (auto_fit) or explain."""
    job = replace(job, cfg=_with_saved_fit(job.cfg, job.paths))
    while True:
        try:
            return _run_stage(job)
        except _StageOutOfMemory as oom:
            where = oom.where
        # Out of the except block: the failed attempt's frames (and its tensors) are gone before the retry.
        _release_memory()
        # Across processes a retry would need every rank to agree on it; the one that ran out stops the launch.
        retry = job.cfg.train.auto_fit and not distributed.is_distributed()
        smaller = preflight.halved_batch(job.cfg) if retry else None
        if smaller is None:
            raise preflight.out_of_memory_error(job.cfg, where)
        old, new = job.cfg.train, smaller.train
        job.emit(Warning(message=f"out of GPU memory {where}: retrying with micro_batch_size {new.micro_batch_size} "
                                 f"and grad_accum {new.grad_accum} (was {old.micro_batch_size} x {old.grad_accum}; "
                                 "same effective batch)", hint="train.auto_fit is on"))  # fmt: skip
        # RunStarted went out before the preflight; the retry continues from the last complete checkpoint.
        job = replace(job, cfg=smaller, resume=True, run_started=None)
        job.paths.fit.write_text(json.dumps({"micro_batch_size": new.micro_batch_size, "grad_accum": new.grad_accum}))


def _with_saved_fit(cfg: RunConfig, paths: StagePaths) -> RunConfig:
    """A resumed stage keeps the batch shape auto_fit found, so its checkpoints line up."""
    if not paths.fit.is_file():
        return cfg
    fit = json.loads(paths.fit.read_text())
    return cfg.model_copy(update={"train": cfg.train.model_copy(update=fit)})


def _run_stage(job: StageJob) -> StageResult:
    cfg, emit, technique = job.cfg, job.emit, job.technique
    with distributed.main_first():  # rank 0 drops a broken checkpoint before the others look
        point = resume_point(job.paths.checkpoints) if job.resume else None
    for dropped in point.dropped if point else []:
        emit(Warning(message=f"skipped incomplete checkpoint {dropped} (cut off while written, or damaged since)"))
    checkpoint = point.checkpoint if point else None
    if checkpoint is not None:
        distributed.check_processes(checkpoint)
    if checkpoint is not None and trained_to_the_end(checkpoint):
        return _finish_from_checkpoint(job, checkpoint)
    tokenizer = load_tokenizer(cfg.model)
    try:
        loaded = load_model(cfg, tokenizer)
    except torch.cuda.OutOfMemoryError:
        # A smaller micro-batch cannot help here: the weights alone do not fit.
        raise preflight.out_of_memory_error(cfg, "while loading the model") from None
    loaded.active.update(technique.describe(cfg, job.data))
    loaded.active.update(distributed.batch_facts(cfg, job.strategy))
    if job.run_started is not None:
        emit(RunStarted(**job.run_started, device=loaded.device, dtype=str(loaded.dtype).removeprefix("torch."),
                        active=loaded.active, trainable_params=loaded.trainable_params,
                        total_params=loaded.total_params, effective_batch=distributed.effective_batch(cfg),
                        resumed_from=str(checkpoint) if checkpoint else None))  # fmt: skip
        preflight.check_disk_space(job.run.root, cfg, loaded, emit)

    events = EventCallback(emit, job.stop, stage=job.index, save_now=job.run.save_now,
                           keep_checkpoints=cfg.train.save_total_limit)  # fmt: skip
    tracker_run = f"{job.run.root.name}/{job.name}" if job.paths.root != job.run.root else job.run.root.name
    ctx = StageContext(
        output_dir=job.paths.checkpoints,
        tracking=tracking_arguments(cfg, job.paths, tracker_run),
        distributing=distributed.strategy_arguments(job.strategy),
        callbacks=[events],
        emit=emit,
        stage=job.index,
        resolve_model=job.resolve_model,
    )
    trainer = technique.build_trainer(cfg, loaded, job.data, ctx)
    _adapters_in_float32_when_computing_in_float32(trainer.model, loaded.dtype)
    data = job.data
    preflight.check_rows(trainer, len(data.train), len(data.eval) if data.eval is not None else 0, cfg, emit)
    emit(
        StageStarted(
            stage=job.index,
            technique=cfg.train.technique,
            model=job.starts_from or cfg.model.name_or_path,
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

    trainer.save_model(str(job.paths.final))  # every rank: an FSDP or ZeRO-3 model is gathered from all
    step = trainer.state.global_step
    completed = step >= trainer.state.max_steps

    def on_main() -> None:
        loaded.tokenizer.save_pretrained(str(job.paths.final))
        if completed and technique.FACTS.policy and cfg.train.compare_prompts:
            _before_and_after(job, trainer.model, loaded.tokenizer, step)

    distributed.main_only(on_main)
    emit(StageFinished(stage=job.index, technique=cfg.train.technique, step=step, output_dir=str(job.paths.final)))
    del trainer, loaded
    _release_memory()
    return StageResult(final_dir=job.paths.final, step=step, completed=completed)


def _before_and_after(job: StageJob, model: torch.nn.Module, tokenizer: Any, step: int) -> None:
    """What the stage changed, in answers (engine/samples.py): its starting model's and its own."""
    cfg = job.cfg
    prompts = samples.held_out_prompts(job.data, cfg.train.compare_prompts)
    if not prompts:
        return
    sampling = cfg.group_sampling  # GRPO's and RLOO's answers are as long as they trained them; others' up to 96
    longest = sampling.max_completion_length if sampling is not None else min(96, cfg.train.max_length)
    pairs = samples.before_and_after(model, tokenizer, prompts, max_new_tokens=longest)
    samples.record(pairs, job.run.samples / f"{job.name}.json", job.emit, stage=job.index, step=step)


def _finish_from_checkpoint(job: StageJob, checkpoint: Path) -> StageResult:
    """The last complete checkpoint is the stage's last step (the worker was killed while saving the
    final adapter or merging): nothing is left to train, so the stage's result is that checkpoint's
    adapter, and the run goes on (or ends) from there."""
    step = step_of(checkpoint)
    job.emit(Warning(message=f"resuming: stage {job.index + 1} ({job.cfg.train.technique}) had reached its last "
                             f"step ({step}) in {checkpoint.name}; finishing it from there"))  # fmt: skip
    final = job.paths.final

    def copy_adapter() -> None:
        final.mkdir(parents=True, exist_ok=True)
        for path in checkpoint.iterdir():
            if path.is_file() and path.name not in _RESUME_ONLY and not path.name.startswith("rng_state"):
                shutil.copy2(path, final / path.name)
        load_tokenizer(job.cfg.model).save_pretrained(str(final))

    distributed.main_only(copy_adapter)
    job.emit(StageFinished(stage=job.index, technique=job.cfg.train.technique, step=step, output_dir=str(final)))
    return StageResult(final_dir=final, step=step, completed=True)


def _adapters_in_float32_when_computing_in_float32(model: torch.nn.Module, dtype: torch.dtype) -> None:
    """TRL casts the trainable parameters of a 4-bit model to bfloat16 (the QLoRA recipe, right under
    bf16 autocast on a GPU). In a float32 run (the CPU) bf16 adapters round most AdamW updates away,
    and the demo's loss diverged after ~25 steps; float32 adapters train smoothly."""
    if dtype != torch.float32:
        return
    for param in model.parameters():
        if param.requires_grad and param.dtype != torch.float32:
            param.data = param.data.float()


def _run_started_fields(run: RunDir, model: str, stage_names: list[str], strategy: str) -> dict:
    return {"run_dir": str(run.root), "name": run.name, "model": model, "stages": stage_names,
            "processes": distributed.world_size(), "strategy": strategy}  # fmt: skip


def starting_model(cfg: RunConfig, run: RunDir) -> tuple[str, str]:
    """(what the first stage loads, what the events say it starts from): model.name_or_path itself, or the
    past run it names (smoltrain/pastrun.py): a full fine-tune as it is, an adapter merged into a 16-bit copy
    of its base in `start-model/`, once (a resumed run finds it complete there: the merge is renamed into
    place only when it is whole)."""
    start = past_run(cfg.model.name_or_path)
    if start is None:
        return cfg.model.name_or_path, cfg.model.name_or_path
    if start.base is None:
        return str(start.result), start.describe()
    merged = run.start_model
    if not merged.is_dir():
        partial_copy = merged.with_name(merged.name + ".partial")
        shutil.rmtree(partial_copy, ignore_errors=True)  # a merge cut off by a kill
        # The adapter is a policy's whatever this run trains (a reward model may start from an SFT run).
        base_cfg = cfg.model_copy(update={
            "model": cfg.model.model_copy(update={"name_or_path": start.base, "revision": start.revision}),
            "train": cfg.train.model_copy(update={"technique": "sft"}),
        })  # fmt: skip
        merge_adapter(base_cfg, start.result, partial_copy)
        partial_copy.rename(merged)
    return str(merged), start.describe()


def _resolve_model(finished: dict[str, Path], ref: str) -> Path:
    """A reward model named by an earlier stage of this run, or by a run folder or model folder."""
    if ref in finished:
        return finished[ref]
    path = Path(ref).expanduser()
    for candidate in (RunDir(path).final, path):
        if (candidate / "config.json").exists() or (candidate / "adapter_config.json").exists():
            return candidate
    raise ConfigError(
        f"reward_model: {ref!r} is neither an earlier stage ({', '.join(finished) or 'none so far'}) "
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
