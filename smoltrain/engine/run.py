"""One run, start to finish: data -> model -> technique -> train -> save, reporting through `emit`.

The data is read and checked before the model is loaded, so a broken dataset fails in
seconds, not after a multi-GB download. The final adapter and tokenizer go to
`<run_dir>/final/`; checkpoints to `<run_dir>/checkpoints/`.

Runs in the worker process. Never imports textual.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from types import ModuleType

from smoltrain.config.schema import RunConfig
from smoltrain.engine.callbacks import EventCallback, StopFlag
from smoltrain.engine.data import prepare_datasets
from smoltrain.engine.events import Emit, RunFinished, RunStarted, StageFinished, StageStarted
from smoltrain.engine.model import load_model, load_tokenizer
from smoltrain.engine.techniques import sft

TECHNIQUES: dict[str, ModuleType] = {"sft": sft}


def run(cfg: RunConfig, run_dir: Path, emit: Emit, stop: StopFlag) -> None:
    started = time.time()
    technique = TECHNIQUES[cfg.train.technique]
    data = prepare_datasets(cfg.data, cfg.train.technique, seed=cfg.train.seed)
    tokenizer = load_tokenizer(cfg)
    loaded = load_model(cfg, tokenizer)
    loaded.active["loss_on"] = technique.loss_target(cfg, data)

    emit(
        RunStarted(
            run_dir=str(run_dir),
            name=run_dir.name,
            model=cfg.model.name_or_path,
            device=loaded.device,
            dtype=str(loaded.dtype).removeprefix("torch."),
            stages=[cfg.train.technique],
            active=loaded.active,
            trainable_params=loaded.trainable_params,
            total_params=loaded.total_params,
        )
    )
    callback = EventCallback(emit, stop, stage=0)
    trainer = technique.build_trainer(cfg, loaded, data, run_dir / "checkpoints", [callback])
    emit(
        StageStarted(
            stage=0,
            technique=cfg.train.technique,
            max_steps=_planned_steps(cfg, len(trainer.get_train_dataloader())),
            train_rows=len(data.train),
            eval_rows=len(data.eval) if data.eval is not None else 0,
            data=data.report.summary(),
        )
    )
    trainer.train()

    final_dir = run_dir / "final"
    trainer.save_model(str(final_dir))
    loaded.tokenizer.save_pretrained(str(final_dir))
    step = trainer.state.global_step
    emit(StageFinished(stage=0, technique=cfg.train.technique, step=step, output_dir=str(final_dir)))
    emit(
        RunFinished(
            status="stopped" if stop.requested else "completed",
            step=step,
            final_dir=str(final_dir),
            duration_s=time.time() - started,
        )
    )


def _planned_steps(cfg: RunConfig, batches_per_epoch: int) -> int:
    if cfg.train.max_steps:
        return cfg.train.max_steps
    return max(1, math.ceil(batches_per_epoch / cfg.train.grad_accum * cfg.train.epochs))
