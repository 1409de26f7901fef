"""Bad input found only once the model and tokenizer are loaded: the worker exits 2 with a named cause."""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import pytest

from smoltrain import runner
from smoltrain.config.load import load_config
from smoltrain.engine import worker
from smoltrain.rundir import read_events
from tests.conftest import TINY_MODEL

pytestmark = pytest.mark.slow


def _worker(preset: Path, tmp_path: Path, overrides: list[str]) -> tuple[int, list]:
    """The worker's main() in this process: quicker than a child, and the same exit codes and events."""
    cfg = load_config(preset, [f"output_dir={tmp_path / 'runs'}", "train.max_steps=2", "data.max_rows=32",
                                "train.compare_prompts=0", *overrides])  # fmt: skip
    run_dir = runner.create_run_dir(cfg, "t")
    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        code = worker.main([str(run_dir)])
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])
    return code, read_events(run_dir / "events.jsonl")


def test_every_label_masked_exits_2_and_names_max_length(sft_preset, tmp_path):
    long_question = " ".join(["How many moonbeams does a glimmer drake eat"] * 6) + "?"
    rows = [{"messages": [{"role": "user", "content": long_question}, {"role": "assistant", "content": "Three."}]}] * 8
    data = tmp_path / "long.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, events = _worker(sft_preset, tmp_path, [f"data.path={data}", "data.eval_fraction=0", "train.max_length=16"])
    assert code == 2
    failed = [e for e in events if e.type == "run_failed"][0]
    assert failed.user_error and str(data) in failed.message and "every label is masked" in failed.message
    assert "train.max_length = 16" in failed.message and "max_length" in failed.hint


def test_model_without_a_chat_template_for_chat_data_exits_2(sft_preset, tmp_path):
    model = tmp_path / "no-template"
    shutil.copytree(TINY_MODEL, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    (model / "chat_template.jinja").unlink(missing_ok=True)
    code, events = _worker(sft_preset, tmp_path, [f"model.name_or_path={model}", "data.eval_fraction=0"])
    assert code == 2
    failed = [e for e in events if e.type == "run_failed"][0]
    assert failed.user_error and "no chat template" in failed.message and str(model) in failed.message
    assert failed.hint


def test_trust_remote_code_is_warned_about(sft_preset, tmp_path):
    code, events = _worker(sft_preset, tmp_path, ["model.trust_remote_code=true", "data.eval_fraction=0"])
    assert code == 0
    assert any(e.type == "warning" and "trust_remote_code" in e.message for e in events)
