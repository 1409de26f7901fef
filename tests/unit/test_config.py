"""The preset schema and loader: every shipped preset validates, overrides coerce, mistakes name file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from smoltrain.config.load import dump_config, load_config, parse_override, validate_config
from smoltrain.config.presets import PRESETS_DIR, list_presets
from smoltrain.errors import ConfigError

MINIMAL = '[model]\nname_or_path = "org/model"\n[data]\npath = "org/dataset"\n'


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("preset", list_presets(), ids=lambda p: p.name)
def test_every_shipped_preset_validates_and_describes_itself(preset):
    cfg = load_config(preset.path)
    assert cfg.model.name_or_path
    assert not preset.description.startswith("(no description"), "presets open with a comment saying what they do"
    assert "run" in preset.path.read_text().lower(), "the header says how to run it"


def test_shipped_presets_exist():
    assert (PRESETS_DIR / "demo-sft.toml").exists()
    assert len(list_presets()) >= 2


def test_defaults_are_qlora_with_all_linear_lora(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL))
    assert cfg.quantization.mode == "4bit" and cfg.quantization.quant_type == "nf4" and cfg.quantization.double_quant
    assert cfg.lora.enabled and cfg.lora.target_modules == "all-linear"
    assert cfg.model.trust_remote_code is False
    assert cfg.train.gradient_checkpointing is True


@pytest.mark.parametrize(
    ("override", "getter", "expected"),
    [
        ("train.learning_rate=1e-4", lambda c: c.train.learning_rate, 1e-4),
        ("train.max_steps=7", lambda c: c.train.max_steps, 7),
        ("train.gradient_checkpointing=false", lambda c: c.train.gradient_checkpointing, False),
        ("lora.target_modules=[\"q_proj\", \"v_proj\"]", lambda c: c.lora.target_modules, ["q_proj", "v_proj"]),
        ("model.name_or_path=Qwen/Qwen3-0.6B", lambda c: c.model.name_or_path, "Qwen/Qwen3-0.6B"),
        ("data.columns.prompt=question", lambda c: c.data.columns, {"prompt": "question"}),
    ],
)
def test_overrides_coerce_types(tmp_path, override, getter, expected):
    assert getter(load_config(write(tmp_path, MINIMAL), [override])) == expected


def test_unknown_key_names_file_key_and_suggests(tmp_path):
    path = write(tmp_path, MINIMAL + "[train]\nlerning_rate = 1e-4\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in err.value.message and "train.lerning_rate" in err.value.message
    assert "train.learning_rate" in err.value.hint


def test_unknown_section(tmp_path):
    with pytest.raises(ConfigError, match="unknown key trainer"):
        load_config(write(tmp_path, MINIMAL + "[trainer]\nx = 1\n"))


def test_wrong_type_names_key_and_value(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, MINIMAL + '[train]\nmax_steps = "ten"\n'))
    assert "train.max_steps" in err.value.message and "'ten'" in err.value.message


def test_bad_override_names_the_set_flag(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, MINIMAL), ["train.learning_rate=fast"])
    assert "--set train.learning_rate=fast" in err.value.message


def test_malformed_override():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.learning_rate")


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write(tmp_path, MINIMAL + "[train\nmax_steps = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(path) in err.value.message and "line 5" in err.value.message


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("does/not/exist.toml")


def test_missing_required_key(tmp_path):
    with pytest.raises(ConfigError, match="missing required key data"):
        load_config(write(tmp_path, '[model]\nname_or_path = "x"\n'))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[lora]\nenabled = false\n", "needs lora.enabled = true"),
        ("[data]\npath = 'x'\neval_fraction = 1.5\n", "data.eval_fraction"),
        ("[data]\npath = 'x'\neval_split = 'test'\neval_fraction = 0.1\n", "either data.eval_split or data.eval_fraction"),
        ("[train]\nmicro_batch_size = 0\n", "train.micro_batch_size"),
        ("name = 'a/b'\n", "name"),
    ],
)
def test_cross_field_and_range_rules(tmp_path, extra, message):
    text = MINIMAL.replace('[data]\npath = "org/dataset"\n', "") if extra.startswith("[data]") else MINIMAL
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(write(tmp_path, extra + text if extra.startswith("name") else text + extra))


def test_relative_paths_resolve_against_the_preset_folder(tmp_path, monkeypatch):
    (tmp_path / "data.jsonl").write_text("{}\n")
    sub = tmp_path / "presets"
    sub.mkdir()
    path = write(sub, '[model]\nname_or_path = "org/model"\n[data]\npath = "../data.jsonl"\n')
    monkeypatch.chdir("/")
    cfg = load_config(path)
    assert cfg.data.path == str((tmp_path / "data.jsonl").resolve())
    assert cfg.model.name_or_path == "org/model", "hub ids are left alone"


def test_dumped_config_round_trips(tmp_path):
    cfg = load_config(write(tmp_path, MINIMAL), ["train.max_steps=3", "lora.rank=4"])
    again = load_config(write(tmp_path, dump_config(cfg), "resolved.toml"))
    assert again == cfg


@pytest.mark.parametrize(
    "typed",
    [" Qwen/Qwen3-0.6B ", "\tQwen/Qwen3-0.6B", "https://huggingface.co/Qwen/Qwen3-0.6B", "hf.co/Qwen/Qwen3-0.6B/"],
)
def test_a_pasted_hub_id_reads_as_the_hub_id(typed):
    """Issue 14, defect 4: a hub id with a space after it read as a missing folder ("no such folder - hint:
    give a hub id such as Qwen/Qwen3-0.6B", the very id given); a model's hub page address is its id too."""
    from smoltrain.names import looks_like_path

    assert looks_like_path(typed), "as typed, it would be taken for a folder"
    cfg = validate_config({"model": {"name_or_path": typed}, "data": {"path": "org/dataset"}}, source="wizard")
    assert cfg.model.name_or_path == "Qwen/Qwen3-0.6B"
    assert not looks_like_path(cfg.model.name_or_path)
