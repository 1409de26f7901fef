"""The command line: fast help without torch, exit codes, one-line errors without tracebacks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from smoltrain.cli import main


def smoltrain(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "smoltrain.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=60)


def test_help_path_imports_no_torch_or_textual():
    code = "import sys, smoltrain.cli as c; c.build_parser(); print(sorted(m for m in ('torch','textual','transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_worker_loads_no_ml_library_before_it_reads_the_config():
    # Unsloth patches transformers, PEFT and TRL only if it is imported before them: the worker must
    # be able to import it first, after reading the config.
    code = "import sys, smoltrain.engine.worker; print(sorted(m for m in ('transformers','peft','trl') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_lists_the_commands():
    out = smoltrain("--help").stdout
    for command in ("run", "validate", "presets", "demo"):
        assert command in out


def test_presets_lists_shipped_presets_with_descriptions(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "demo-sft" in out and "Demo SFT" in out


def test_validate_ok_for_shipped_preset(capsys):
    assert main(["validate", "demo-sft"]) == 0
    assert "ok:" in capsys.readouterr().out


def test_bad_preset_exits_2_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[model]\nname_or_path = "x"\n[data]\npath = "y"\n[train]\nlearning_rat = 1\n')
    result = smoltrain("validate", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and str(bad) in lines[0] and "train.learning_rat" in lines[0]
    assert "hint:" in lines[1] and "Traceback" not in result.stderr


def test_toml_syntax_error_exits_2(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text('[model\nname_or_path = "x"\n')
    result = smoltrain("run", str(bad))
    assert result.returncode == 2 and "TOML syntax error" in result.stderr and "Traceback" not in result.stderr


def test_wrong_type_in_run_exits_2_before_training(tmp_path):
    result = smoltrain("run", "demo-sft", "--set", "train.max_steps=lots")
    assert result.returncode == 2 and "train.max_steps" in result.stderr


def test_curate_a_preset_without_a_reward_exits_2_naming_what_to_add(capsys, tmp_path):
    assert main(["curate", "demo-sft", "--set", f"output_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err
    assert "(stage sft): curate needs a reward to choose the best answer" in err and "[[curate.rewards]]" in err
    assert "Traceback" not in err and not any(tmp_path.iterdir())  # refused before a run folder is made
