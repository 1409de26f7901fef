"""A past run as the model a new run starts from: what `model.name_or_path = "runs/sft-1"` means.

A past run is named by its run folder (its result is final/, a pipeline's being its last stage's) or by
that final/ itself. A LoRA adapter there (adapter_config.json) is merged by the worker into a 16-bit copy
of its base inside the new run's folder (`RunDir.start_model`, engine/run.py), and a fresh adapter is
trained on that; a full fine-tune's final/ (config.json) is a model folder and is used as it is. What
reads the model before the worker asks here where the past run's config.json (the base's) and tokenizer
(final/'s) are: `smoltrain validate` and the data preview (engine/model.py `load_tokenizer`), `smoltrain
estimate` and the preflight's memory model (memory/shapes.py), the wizard's demo defaults (`origin_model`).

Imports the stdlib, smoltrain.rundir and smoltrain.errors only: never torch, never textual.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from smoltrain.errors import ModelError
from smoltrain.names import HUB_ID
from smoltrain.rundir import RunDir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_MOST_HOPS = 20  # a run started from a run started from ...: far more than anyone chains


@dataclass(frozen=True)
class PastRun:
    """A past run's result, named by model.name_or_path."""

    name: str  # the run's folder name, as the events say it: "from run sft-1 (...)"
    result: Path  # its final/: a LoRA adapter with its tokenizer, or a whole model
    base: str | None  # the adapter's base model (adapter_config.json); None for a full fine-tune
    revision: str | None = None  # the base's hub revision the adapter was trained on, where recorded

    @property
    def config_source(self) -> str:
        """The model folder or hub id whose config.json describes this model: the base's, for an adapter."""
        return self.base if self.base is not None else str(self.result)

    def describe(self) -> str:
        if self.base is None:
            return f"from run {self.name} (its fully fine-tuned model, as it is)"
        return f"from run {self.name} (its adapter merged into {_short(self.base)})"


def past_run(name_or_path: str) -> PastRun | None:
    """The past run `name_or_path` names (a run folder, or a folder holding a LoRA adapter), or None for a
    hub id or a model folder. A ModelError naming model.name_or_path when that run has no usable result."""
    path = Path(name_or_path).expanduser()
    if not path.is_dir():
        return None
    given = f"model.name_or_path = {name_or_path!r}"
    if RunDir(path).is_run():
        name, result = path.name, RunDir(path).final
        if not result.is_dir():
            raise ModelError(f"{given}: run {name} has no trained model yet (no final/)",
                             hint=f"pick a finished run, or finish this one first: smoltrain resume {path}")  # fmt: skip
    elif (path / "adapter_config.json").is_file():
        name, result = (path.parent.name if path.name == "final" else path.name), path
    else:
        return None  # a model folder (or not one: the loaders say which)
    adapter = result / "adapter_config.json"
    if not adapter.is_file():
        if (result / "config.json").is_file():
            return PastRun(name, result, base=None)
        raise ModelError(f"{given}: {result} holds neither a LoRA adapter (adapter_config.json) nor a model (config.json)",
                         hint="the run was cut off before it saved its result: resume it, or pick another run")  # fmt: skip
    recorded = _read_json(adapter)
    if recorded.get("task_type") == "SEQ_CLS":
        raise ModelError(f"{given}: run {name} trained a reward model (it scores answers), not a model to train on",
                         hint="start from a policy run (sft, dpo, grpo), or use it as a GRPO reward (reward_model)")  # fmt: skip
    base = recorded.get("base_model_name_or_path")
    if not isinstance(base, str) or not base:
        raise ModelError(f"{given}: {adapter} names no base_model_name_or_path, so the adapter's base is unknown",
                         hint="set base_model_name_or_path there to the base model's folder or hub id")  # fmt: skip
    if not Path(base).expanduser().exists() and not HUB_ID.match(base):
        raise ModelError(f"{given}: the adapter's base model {base} is gone (no such folder)",
                         hint=f"put the base model back there, or set base_model_name_or_path in {adapter} "
                         "to where it is now")  # fmt: skip
    revision = recorded.get("revision")
    return PastRun(name, result, base, revision if isinstance(revision, str) else None)


def first_model(run: RunDir, name_or_path: str) -> str:
    """What the run in `run` trained its first stage on, for `chat --compare` and evaluation's base: the
    past run's adapter merged into `start-model/`, a past run's full fine-tune, or `name_or_path` itself."""
    if run.start_model.is_dir():
        return str(run.start_model)
    start = past_run(name_or_path)
    return str(start.result) if start is not None and start.base is None else name_or_path


def origin_model(name_or_path: str) -> str:
    """The model at the root of a chain of past runs (each run's config.toml names what it started from):
    `name_or_path` itself when it is not a run. Reads config files only; an unreadable one ends the chain."""
    current = name_or_path
    for _ in range(_MOST_HOPS):
        path = Path(current).expanduser()
        run = RunDir(path if RunDir(path).is_run() else path.parent)
        if not run.is_run() or (run.root != path and path != run.final):
            return current
        try:
            model = tomllib.loads(run.config.read_text(encoding="utf-8")).get("model", {}).get("name_or_path")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
            return current
        if not isinstance(model, str) or not model:
            return current
        current = model
    return current


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _short(model: str) -> str:
    """A local base by its last two parts (an absolute path would bury the run's name), a hub id as it is."""
    path = Path(model)
    return str(Path(*path.parts[-2:])) if path.is_absolute() else model
