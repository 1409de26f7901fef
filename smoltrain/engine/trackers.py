"""The experiment trackers a user already watches: [logging] report_to = ["tensorboard", "trackio", "wandb"].

transformers' own integrations do the writing (the Trainer's report_to), so a tracker gets exactly the
metrics TRL logs, the ones the events carry; smoltrain only checks the package is there before any model
loads (one line naming logging.report_to and the extra to install), and points the local ones into the run
folder: TensorBoard's event files and W&B's files under `trackers/` of the stage (rundir.StagePaths). Each
stage of a pipeline is its own tracker run, named `<run>/<stage>`. The events file stays the one source of
the app's plots. Nothing is imported unless asked for.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from smoltrain.config.schema import RunConfig
from smoltrain.errors import ConfigError
from smoltrain.rundir import StagePaths

# report_to name -> (the module it needs, the extra that installs it)
_NEEDS = {"tensorboard": ("tensorboard", "tensorboard"), "trackio": ("trackio", "trackio"), "wandb": ("wandb", "wandb")}


def check_trackers(cfg: RunConfig) -> None:
    """Before anything loads: every tracker asked for is installed. ConfigError naming the key otherwise."""
    for name in cfg.logging.report_to:
        module, extra = _NEEDS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"logging.report_to: {name!r} is not installed here (no module {module})",
                              hint=f"pip install 'smoltrain[{extra}]', or take {name!r} out of logging.report_to")  # fmt: skip


def tracking_arguments(cfg: RunConfig, paths: StagePaths, run_name: str) -> dict[str, Any]:
    """TrainingArguments for the stage's trackers ("none" when [logging] asks for none); the local ones are
    pointed at the stage's trackers/ through the variables their integrations read."""
    report_to = list(cfg.logging.report_to)
    if not report_to:
        return {"report_to": "none"}
    paths.trackers.mkdir(parents=True, exist_ok=True)
    if "tensorboard" in report_to:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(paths.trackers / "tensorboard")
    if "wandb" in report_to:
        os.environ["WANDB_DIR"] = str(paths.trackers)
        os.environ["WANDB_PROJECT"] = cfg.logging.project
    return {"report_to": report_to, "run_name": run_name, "project": cfg.logging.project}
