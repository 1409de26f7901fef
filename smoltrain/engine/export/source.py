"""What `smoltrain export` exports: a run's (or one pipeline stage's) trained model, the base it was
trained on, and the exports already made from it.

    source = find_source(run_dir, stage)     # ConfigError / ModelError naming what is missing
    source.adapter, source.base, source.cfg  # final/ (a LoRA adapter, or a full fine-tune), its base, the stage's config
    reusable(folder, source, "merged")       # an earlier export of this very model, or None

The base is the adapter's `base_model_name_or_path` (a later pipeline stage's is the previous
stage's merged folder inside the run; a moved run folder is followed). An export folder carries
`smoltrain-export.json` saying what it was made from, so a GGUF export reuses a merged export of
the same adapter files and never a stale one, and `--out` never replaces a folder smoltrain did not
write.

Imports the config loader and the run folder only; never torch or textual.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoltrain.config.load import load_config, stage_configs
from smoltrain.config.schema import RunConfig
from smoltrain.config.techniques import facts
from smoltrain.errors import ConfigError, ModelError
from smoltrain.rundir import RunDir, running_worker

RECORD = "smoltrain-export.json"


@dataclass(frozen=True)
class ExportSource:
    run: RunDir
    stage: str | None  # a pipeline stage's name, or None for the run's result
    cfg: RunConfig  # that stage's resolved config
    adapter: Path  # the trained folder: final/ (a LoRA adapter, or a full fine-tune's whole model)
    base: str  # the model the adapter goes on (the adapter folder itself for a full fine-tune)
    revision: str | None  # the hub revision of the base, where the base is the run's own model

    @property
    def full_model(self) -> bool:
        return not (self.adapter / "adapter_config.json").is_file()

    @property
    def scores(self) -> bool:
        """A reward model: a sequence classifier that scores text rather than a chat model."""
        return facts(self.cfg.train.technique).model_class == "sequence_classification"

    @property
    def name(self) -> str:
        """The exported model's name: the run's, and the stage's for a stage."""
        return f"{self.run.name}-{self.stage}" if self.stage else self.run.name

    @property
    def base_field(self) -> str:
        """Where the base's name comes from, for messages."""
        if self.full_model:
            return "the trained model"
        return f"the base model (base_model_name_or_path in {self.adapter / 'adapter_config.json'})"

    def merge_config(self) -> RunConfig:
        """The stage's config with its model the adapter's base: what merge_adapter reads."""
        model = self.cfg.model.model_copy(update={"name_or_path": self.base, "revision": self.revision})
        return self.cfg.model_copy(update={"model": model})

    def fingerprint(self) -> str:
        """Names, sizes and modification times of the trained folder's files: changes whenever it is rewritten."""
        digest = hashlib.sha256()
        for path in sorted(p for p in self.adapter.rglob("*") if p.is_file()):
            stat = path.stat()
            digest.update(f"{path.relative_to(self.adapter)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()

    def record(self, fmt: str, **details: Any) -> dict[str, Any]:
        """What an export folder made from this source says about itself (smoltrain-export.json)."""
        return {"format": fmt, "run": str(self.run.root), "stage": self.stage, "model": str(self.adapter),
                "fingerprint": self.fingerprint(), "base": self.base, **details}  # fmt: skip


def find_source(run_dir: Path, stage: str | None) -> ExportSource:
    run = RunDir(run_dir.expanduser().resolve())
    if not run.is_run():
        raise ConfigError(f"{run_dir}: not a run folder (it has no config.toml)",
                          hint="give the folder `smoltrain run` made, such as runs/<name>")  # fmt: skip
    cfg = load_config(run.config)
    stages = stage_configs(cfg)
    names = [name for name, _ in stages]
    if stage is not None and not cfg.stages:
        raise ConfigError(f"--stage {stage}: {run_dir} is a single-stage run", hint="leave out --stage")
    if stage is not None and stage not in names:
        raise ConfigError(f"--stage {stage}: the run has no such stage", hint=f"its stages: {', '.join(names)}")
    stage_cfg = dict(stages)[stage] if stage is not None else stages[-1][1]
    adapter = run.result(stage)
    worker = running_worker(run.root)
    if worker is not None and not (stage is not None and run.stage(stage).done.is_file()):
        raise ConfigError(f"{run_dir} is still training (worker pid {worker})",
                          hint="wait for it to finish, or stop it and export what it saved")  # fmt: skip
    if (adapter / "adapter_config.json").is_file():
        base = _relocated(_adapter_base(adapter), run)
    elif (adapter / "config.json").is_file():
        base = str(adapter)  # a full fine-tune: the trained folder is the whole model
    else:
        raise _nothing_trained(run, stage, adapter, names if cfg.stages else [])
    revision = cfg.model.revision if base == cfg.model.name_or_path else None
    return ExportSource(run=run, stage=stage, cfg=stage_cfg, adapter=adapter, base=base, revision=revision)


def reusable(folder: Path, source: ExportSource, fmt: str, **details: Any) -> dict[str, Any] | None:
    """The record of the export in `folder` if it was made, as `fmt` with `details`, from the very files of
    `source` (an earlier export that a later run or resume did not make stale), else None."""
    record = read_record(folder)
    if record is None or record.get("format") != fmt or record.get("fingerprint") != source.fingerprint():
        return None
    if any(record.get(key) != value for key, value in details.items()):
        return None
    made = folder / str(record.get("file", "config.json"))
    return record if made.is_file() else None


def read_record(folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(folder: Path, record: dict[str, Any]) -> None:
    (folder / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def check_target(out: Path) -> None:
    """Refuse an output folder that holds anything but an earlier smoltrain export."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: a file, not a folder", hint="give a new folder")
    if out.is_dir() and any(out.iterdir()) and read_record(out) is None:
        raise ConfigError(f"--out {out}: the folder holds other files, and smoltrain replaces only its own exports",
                          hint="give a new or empty folder")  # fmt: skip


def _adapter_base(adapter: Path) -> str:
    config_file = adapter / "adapter_config.json"
    try:
        base = json.loads(config_file.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        base = None
    if not isinstance(base, str) or not base:
        raise ModelError(f"{config_file}: no base_model_name_or_path, so the base model is unknown",
                         hint="the file is damaged: the run's checkpoints/ may hold an intact copy of the adapter")  # fmt: skip
    return base


def _relocated(base: str, run: RunDir) -> str:
    """A previous stage's merged folder, found inside this run folder when the run was moved since."""
    path = Path(base)
    parts = path.parts
    if path.exists() or len(parts) < 3 or parts[-1] != "merged" or parts[-3] != "stages":
        return base
    moved = run.stage(parts[-2]).merged
    return str(moved) if moved.is_dir() else base


def _nothing_trained(run: RunDir, stage: str | None, adapter: Path, stages: list[str]) -> ConfigError:
    shown = adapter.relative_to(run.root) if adapter.is_relative_to(run.root) else adapter
    message = f"{run.root}: nothing trained to export yet: no model in {shown}/ (the run stopped before saving one)"
    finished = [name for name in stages if (run.stage(name).final / "adapter_config.json").is_file()]
    if stage is None and finished:
        return ConfigError(message, hint=f"export a finished stage with --stage {finished[-1]}, or finish the run: "
                                         f"smoltrain resume {run.root}")  # fmt: skip
    return ConfigError(message, hint=f"finish the run first: smoltrain resume {run.root}")
