"""[logging] report_to: the trackers users already watch get the run's metrics (issue 15, trackers part).

TensorBoard is the one installed for the tests (the `test` extra): its event files, read back with
TensorBoard's own reader, hold the loss at every step the events file logged it. A tracker that is not
installed is one line naming logging.report_to, before any model loads.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from smoltrain.config.load import validate_config
from smoltrain.engine import trackers
from smoltrain.errors import ConfigError
from smoltrain.rundir import RunDir
from tests.conftest import train_in_process

pytestmark = pytest.mark.slow


def test_tensorboard_gets_the_loss_at_every_logged_step(sft_preset: Path, tmp_path: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train_in_process(sft_preset, tmp_path, ["train.max_steps=6", "train.logging_steps=2", "data.eval_fraction=0",
                                                  "train.save_steps=6", 'logging.report_to=["tensorboard"]'])  # fmt: skip
    assert run.exit_code == 0, run.of_type("run_failed")
    logged = {e.step: e.values["loss"] for e in run.of_type("metrics") if "loss" in e.values}
    assert sorted(logged) == [1, 2, 4, 6]  # logging_first_step, then every 2
    folder = RunDir(run.run_dir).stage(None).trackers / "tensorboard"
    assert list(folder.glob("events.out.tfevents.*")), f"no TensorBoard event file in {folder}"
    board = EventAccumulator(str(folder))
    board.Reload()
    written = {s.step: s.value for s in board.Scalars("train/loss")}
    assert sorted(written) == sorted(logged)
    for step, loss in logged.items():
        assert written[step] == pytest.approx(loss, rel=1e-5)


def test_the_default_reports_to_no_tracker(tmp_path: Path):
    cfg = validate_config({"model": {"name_or_path": "org/model"}, "data": {"path": "org/data"}}, source="p.toml")
    assert cfg.logging.report_to == []
    assert trackers.tracking_arguments(cfg, RunDir(tmp_path).stage(None), "r") == {"report_to": "none"}
    assert not (tmp_path / "trackers").exists()


def test_a_tracker_that_is_not_installed_names_the_key(monkeypatch: pytest.MonkeyPatch):
    cfg = validate_config({"model": {"name_or_path": "org/model"}, "data": {"path": "org/data"},
                           "logging": {"report_to": ["wandb"]}}, source="p.toml")  # fmt: skip
    monkeypatch.setattr(trackers.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError) as caught:
        trackers.check_trackers(cfg)
    assert caught.value.message.startswith("logging.report_to: 'wandb' is not installed")
    assert "pip install 'smoltrain[wandb]'" in caught.value.hint


def test_an_unknown_tracker_is_a_preset_error():
    with pytest.raises(ConfigError, match=r"logging\.report_to"):
        validate_config({"model": {"name_or_path": "org/model"}, "data": {"path": "org/data"},
                         "logging": {"report_to": ["mlflow"]}}, source="p.toml")  # fmt: skip
