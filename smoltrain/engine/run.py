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
`stages/<name>/{checkpoints,final,merged}` and copies the last stage's `final/` to `final/`.

Runs in the worker process. Never imports textual.
"""

from __future__ import annotations

import gc
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
from smoltrain.engine.callbacks import EventCallback, StopFlag
from smoltrain.engine.data import PreparedData, prepare_datasets
from smoltrain.engine.events import Emit, RunFinished, RunStarted, StageFinished, StageStarted
from smoltrain.engine.model import load_model, load_tokenizer, merge_adapter
from smoltrain.engine.techniques import dpo, grpo, reward, sft
from smoltrain.engine.techniques.common import StageContext
from smoltrain.errors import ConfigError

TECHNIQUES: dict[str, ModuleType] = {"sft": sft, "reward": reward, "dpo": dpo, "grpo": grpo}
POLICY_TECHNIQUES = {"sft", "dpo", "grpo"}  # their result is the model the next stage starts from


@dataclass
class StageResult:
    final_dir: Path
    step: int


def run(cfg: RunConfig, run_dir: Path, emit: Emit, stop: StopFlag) -> None:
    started = time.time()
    stages = stage_configs(cfg)
    is_pipeline = bool(cfg.stages)
    datasets = [prepare_datasets(s.data, s.train.technique, seed=s.train.seed) for _, s in stages]  # type: ignore[arg-type]

    policy = cfg.model.name_or_path
    finished: dict[str, Path] = {}
    result: StageResult | None = None
    for index, ((name, stage_cfg), data) in enumerate(zip(stages, datasets)):
        stage_dir = run_dir / "stages" / name if is_pipeline else run_dir
        stage_cfg = stage_cfg.model_copy(update={"model": stage_cfg.model.model_copy(update={"name_or_path": policy})})
        result = _run_stage(
            index, stage_cfg, data, stage_dir, emit, stop,
            run_started=_run_started_fields(run_dir, cfg, [n for n, _ in stages]) if index == 0 else None,
            resolve_model=partial(_resolve_model, finished),
        )  # fmt: skip
        finished[name] = result.final_dir
        if stop.requested:
            break
        if stage_cfg.train.technique in POLICY_TECHNIQUES and index < len(stages) - 1:
            policy = str(merge_adapter(stage_cfg, result.final_dir, stage_dir / "merged"))

    final_dir = result.final_dir if result else None
    if is_pipeline and final_dir is not None and not stop.requested:
        shutil.copytree(final_dir, run_dir / "final", dirs_exist_ok=True)
        final_dir = run_dir / "final"
    emit(
        RunFinished(
            status="stopped" if stop.requested else "completed",
            step=result.step if result else 0,
            final_dir=str(final_dir) if final_dir else None,
            duration_s=time.time() - started,
        )
    )


def _run_stage(
    index: int,
    cfg: RunConfig,
    data: PreparedData,
    stage_dir: Path,
    emit: Emit,
    stop: StopFlag,
    run_started: dict | None,
    resolve_model: partial[Path],
) -> StageResult:
    technique_name = cfg.train.technique
    technique = TECHNIQUES[technique_name]
    tokenizer = load_tokenizer(cfg)
    loaded = load_model(cfg, tokenizer)
    loaded.active["loss_on"] = technique.loss_target(cfg, data)
    if run_started is not None:
        emit(RunStarted(**run_started, device=loaded.device, dtype=str(loaded.dtype).removeprefix("torch."),
                        active=loaded.active, trainable_params=loaded.trainable_params,
                        total_params=loaded.total_params))  # fmt: skip

    ctx = StageContext(
        output_dir=stage_dir / "checkpoints",
        callbacks=[EventCallback(emit, stop, stage=index)],
        emit=emit,
        stage=index,
        resolve_model=resolve_model,
    )
    trainer = technique.build_trainer(cfg, loaded, data, ctx)
    _adapters_in_float32_when_computing_in_float32(trainer.model, loaded.dtype)
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
    trainer.train()

    final_dir = stage_dir / "final"
    trainer.save_model(str(final_dir))
    loaded.tokenizer.save_pretrained(str(final_dir))
    step = trainer.state.global_step
    emit(StageFinished(stage=index, technique=technique_name, step=step, output_dir=str(final_dir)))
    del trainer, loaded
    _release_memory()
    return StageResult(final_dir=final_dir, step=step)


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
