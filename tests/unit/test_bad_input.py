"""Bad input the other unit tests leave out: each exits 2 with one line naming what is wrong, and a hint.

(Covered elsewhere: TOML syntax, unknown key and wrong type in test_cli.py and test_config.py; dataset
missing, empty, broken line, not UTF-8 and hub ids offline in test_data_load.py; missing columns in
test_data_techniques.py; unknown roles and empty content in test_data_validation.py; a missing model
folder in tests/engine/test_sft_run.py; every label masked and no chat template in
tests/engine/test_preflight_bad_input.py.)
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from smoltrain.cli import main
from smoltrain.config.load import load_config
from smoltrain.config.presets import PRESETS_DIR
from smoltrain.errors import ConfigError, ModelError

MINIMAL = '[model]\nname_or_path = "org/model"\n[data]\npath = "org/dataset"\n'


def _preset(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "key"),
    [("[train]\nlearning_rate = 2.0\n", "train.learning_rate"), ("[lora]\nrank = 0\n", "lora.rank")],
)
def test_out_of_range_value_exits_2_naming_file_and_key(tmp_path, capsys, extra, key):
    path = _preset(tmp_path, MINIMAL + extra)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    first, hint = err.strip().splitlines()[:2]
    assert first.startswith("error: ") and str(path) in first and key in first
    assert hint.strip().startswith("hint: ") and "Traceback" not in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ConfigError):
        main(["--debug", "run", str(_preset(tmp_path, MINIMAL + "[train]\nlerning_rate = 1\n"))])


def test_output_dir_that_cannot_be_written_exits_2_before_training(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code = main(["run", str(PRESETS_DIR / "demo-sft.toml"), "--set", f"output_dir={blocker / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and "output_dir" in err and str(blocker) in err and "hint: " in err


def test_hub_model_id_without_network_fails_fast_naming_it(monkeypatch):
    from smoltrain.engine.model import load_tokenizer

    def no_network(*args: Any, **kwargs: Any) -> socket.socket:
        raise OSError("Network is unreachable")

    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(socket, "create_connection", no_network)
    cfg = load_config(PRESETS_DIR / "demo-sft.toml", ["model.name_or_path=smoltrain-test/surely-not-a-model"])
    start = time.monotonic()
    with pytest.raises(ModelError) as err:
        load_tokenizer(cfg.model)
    assert time.monotonic() - start < 20, "no half minute of retries"
    assert "model.name_or_path = 'smoltrain-test/surely-not-a-model'" in err.value.message
    assert "network" in err.value.hint
