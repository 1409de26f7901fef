"""What the user reads when a preset, an override, a data folder, a model folder or a CLI flag is wrong.

Each case runs the command in-process and checks what it prints: exit code 2, a first line that
names the file, key or flag at fault (every problem, where there are several), and a hint. Fast: no
training and no weights (the bundled tiny model's tokenizer at most).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from smoltrain.cli import main
from smoltrain.config.presets import PRESETS_DIR, PROJECT_ROOT
from smoltrain.config.schema import ModelSection, RewardFunction
from smoltrain.engine.techniques.rewards import columns_read
from smoltrain.errors import ModelError
from tests.unit.datakit import error_for, prepare, write_jsonl

TINY_MODEL = PROJECT_ROOT / "assets" / "tiny-llama"
SFT_DATA = PROJECT_ROOT / "assets" / "data" / "sft.jsonl"
# Hub ids, never fetched: the preset fails before any model or data is looked at.
MINIMAL = '[model]\nname_or_path = "org/model"\n[data]\npath = "org/dataset"\n'


def _preset(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _user_error(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[str, str]:
    """Run the CLI; it must exit 2 with 'error: ...' and '  hint: ...' and no traceback. (first line, hint line)"""
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    error = next(i for i, line in enumerate(lines) if "error: " in line)
    assert lines[error + 1].startswith("  hint: "), err
    return lines[error], lines[error + 1]


# --- 1. every problem of a preset, not just the first -----------------------------------------


def test_a_preset_with_two_problems_names_both_and_the_file(tmp_path, capsys):
    path = _preset(tmp_path, f'[data]\npath = "{SFT_DATA}"\n[train]\nmax_stepz = 3\n', "x.toml")
    first, hint = _user_error(capsys, "validate", str(path))
    assert first.startswith(f"error: {path}: 2 problems: ")
    assert "missing required section [model]" in first
    assert "unknown key train.max_stepz (did you mean max_steps?)" in first
    assert "smoltrain validate" in hint


def test_one_problem_keeps_its_own_hint(tmp_path, capsys):
    path = _preset(tmp_path, f'[data]\npath = "{SFT_DATA}"\n')
    first, hint = _user_error(capsys, "validate", str(path))
    assert first == f"error: {path}: missing required section [model]"
    assert "name_or_path" in hint and "hub id" in hint


def test_many_problems_list_five_and_count_the_rest(tmp_path, capsys):
    keys = ["max_stepa", "max_stepb", "max_stepc", "max_stepd", "max_stepe", "max_stepf", "max_stepg"]
    path = _preset(tmp_path, MINIMAL + "[train]\n" + "".join(f"{k} = 1\n" for k in keys))
    first, _ = _user_error(capsys, "validate", str(path))
    assert "7 problems" in first and "and 2 more" in first
    assert all(f"train.{k}" in first for k in keys[:5]) and "train.max_stepf" not in first


def test_problems_in_several_stages_are_named_together(tmp_path, capsys):
    text = (
        '[model]\nname_or_path = "org/model"\n'
        '[[stages]]\ntechnique = "sft"\ndata = { path = "org/a" }\ntrain = { lerning_rate = 1e-4 }\n'
        '[[stages]]\ntechnique = "dpo"\n'
    )
    first, _ = _user_error(capsys, "validate", str(_preset(tmp_path, text)))
    assert "2 problems" in first
    assert "unknown key stages[0].train.lerning_rate (did you mean learning_rate?)" in first
    assert "stages[1]: missing required key data" in first


# --- 2. a bad --set is blamed on the --set ----------------------------------------------------


@pytest.mark.parametrize(
    ("override", "what"),
    [
        ("train.max_steps=abc", "must be an integer (got 'abc')"),
        ("train.nosuch=1", "unknown key train.nosuch"),
        ("trian.max_steps=1", "unknown key trian"),
        ("data.columns={a=1}", "data.columns.a: must be a string (got 1)"),
        ("lora.target_modules=[1,2]", "must be a list of strings or 'all-linear' (got [1, 2])"),
    ],
)
def test_a_bad_override_is_blamed_on_the_set_not_the_file(tmp_path, capsys, override, what):
    path = _preset(tmp_path, MINIMAL)
    first, _ = _user_error(capsys, "validate", str(path), "--set", override)
    assert first.startswith(f"error: --set {override}: ") and what in first
    assert str(path) not in first


def test_a_bad_override_of_a_stage_is_blamed_on_the_set(tmp_path, capsys):
    text = '[model]\nname_or_path = "org/model"\n[[stages]]\ntechnique = "sft"\ndata = { path = "org/a" }\n'
    first, _ = _user_error(capsys, "validate", str(_preset(tmp_path, text)), "--set", "stages[0].train.max_steps=abc")
    assert first == "error: --set stages[0].train.max_steps=abc: must be an integer (got 'abc')"


def test_problems_from_the_file_and_a_set_name_each_source(tmp_path, capsys):
    path = _preset(tmp_path, MINIMAL + "[train]\nmax_stepz = 3\n")
    first, _ = _user_error(capsys, "validate", str(path), "--set", "train.learning_rate=fast")
    assert first.startswith(f"error: {path}: 2 problems: ")
    assert "unknown key train.max_stepz" in first and "--set train.learning_rate=fast: must be a number" in first


# --- 3. types in words -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("train.max_steps=1.5", "must be an integer"),
        ("train.learning_rate=fast", "must be a number"),
        ("train.gradient_checkpointing=maybe", "must be true or false"),
        ("lora.target_modules=3", "must be a list of strings or 'all-linear'"),
        ("data.columns=3", "must be a table of strings"),
        ("model.dtype=fp8", "must be one of 'auto', 'bfloat16', 'float16' or 'float32'"),
        ("lora.rank=0", "must be at least 1"),
        ("lora=3", "must be a [lora] section"),
    ],
)
def test_type_names_read_like_english(tmp_path, capsys, override, words):
    first, _ = _user_error(capsys, "validate", str(_preset(tmp_path, MINIMAL)), "--set", override)
    assert words in first
    said = first.split(": ", 2)[-1]  # after "error: --set ...: "
    assert not re.search(r"\b(str|int|float|bool|dict)\b|list\[|Input should|valid", said), said


def test_a_json_file_of_the_wrong_kind_says_so_in_json_words(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text('[{"text": "a"}, "b"]', encoding="utf-8")
    assert "item 2 of the list is a string, not an object" in error_for(str(path)).message
    path.write_text('"just text"', encoding="utf-8")
    assert "expected a list of objects, got a string" in error_for(str(path)).message


# --- 4. a data folder of mixed shapes ------------------------------------------------------------


def _chat(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}


def test_a_folder_of_mixed_shapes_is_refused_naming_each_file(tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [_chat(i) for i in range(10)])
    write_jsonl(folder / "b.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(10)])
    path = _preset(tmp_path, f'[model]\nname_or_path = "{TINY_MODEL}"\n[data]\npath = "{folder}"\neval_fraction = 0\n')
    for command in ("validate", "data"):
        first, hint = _user_error(capsys, command, str(path))
        assert f"{folder}: the folder's files hold rows of 2 different shapes" in first
        assert "a.jsonl: messages" in first and "b.jsonl: prompt_completion" in first
        assert "data.path" in hint and "one file" in hint


def test_a_folder_of_one_shape_is_read_whole(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [_chat(i) for i in range(5)])
    write_jsonl(tmp_path / "b.jsonl", [_chat(i) for i in range(5, 10)])
    prepared = prepare(str(tmp_path))
    assert prepared.format == "messages" and prepared.report.rows_kept == 10


def test_a_mixed_folder_for_grpo_is_refused_too(tmp_path):
    write_jsonl(tmp_path / "chats.jsonl", [_chat(i) for i in range(4)])
    write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"q{i}", "answer": str(i)} for i in range(4)])
    message = error_for(str(tmp_path), "grpo").message
    assert "chats.jsonl: messages" in message and "prompts.jsonl: prompt_only" in message


# --- 5. a model folder without config.json -------------------------------------------------------


def _folder(tmp_path: Path, kind: str) -> Path:
    folder = tmp_path / kind
    folder.mkdir()
    if kind == "tokenizer-only":
        for name in ("tokenizer.json", "tokenizer_config.json"):
            (folder / name).write_bytes((TINY_MODEL / name).read_bytes())
    if kind == "adapter":
        (folder / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "org/base-model"}))
    return folder


@pytest.mark.parametrize("kind", ["empty", "tokenizer-only"])
@pytest.mark.parametrize("command", ["validate", "data"])
def test_a_folder_without_config_json_is_not_a_model_folder(tmp_path, capsys, kind, command):
    folder = _folder(tmp_path, kind)
    path = _preset(tmp_path, f'[model]\nname_or_path = "{folder}"\n[data]\npath = "{SFT_DATA}"\n')
    first, hint = _user_error(capsys, command, str(path))
    assert f"model.name_or_path = '{folder}': no config.json: not a model folder" in first
    assert "network" not in hint and "save_pretrained" in hint


def test_the_worker_path_refuses_it_the_same_way(tmp_path):
    # The worker (engine/run.py) loads the tokenizer first, before any data or weights.
    from smoltrain.engine.model import _not_found, load_tokenizer

    folder = _folder(tmp_path, "empty")
    with pytest.raises(ModelError) as err:
        load_tokenizer(ModelSection(name_or_path=str(folder)))
    assert "no config.json: not a model folder (the folder is empty)" in err.value.message
    # The weights' loader shares the explanation (and never blames the network for a local folder).
    late = _not_found(str(folder), OSError("Couldn't instantiate the backend tokenizer"))
    assert late.message == err.value.message and not late.needs_network


def test_a_lora_adapter_folder_names_its_base_model(tmp_path, capsys):
    # A past run's adapter is a starting model (tests/engine/test_start_from_run.py); its tokenizer is its base's.
    folder = _folder(tmp_path, "adapter")
    path = _preset(tmp_path, f'[model]\nname_or_path = "{folder}"\n[data]\npath = "{SFT_DATA}"\n')
    assert main(["validate", str(path)]) == 0
    assert "not checked" in (out := capsys.readouterr().out) and "org/base-model" in out


# --- 6. --gpu-mem --------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["fit", "estimate"])
@pytest.mark.parametrize("value", ["-5", "0"])
def test_gpu_mem_that_is_not_positive_is_a_user_error(capsys, command, value):
    first, hint = _user_error(capsys, command, str(PRESETS_DIR / "demo-sft.toml"), "--gpu-mem", value)
    assert first == f"error: --gpu-mem {value}: the GPU's memory must be a positive number of GiB"
    assert "--gpu-mem 12" in hint


# --- 7. GRPO: the columns the rewards read -------------------------------------------------------


def _prompts(tmp_path: Path, **extra: str) -> str:
    return write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"{i} + 1 = ?", **extra} for i in range(4)])


def _grpo_preset(tmp_path: Path, data: str, rewards: str) -> Path:
    text = (
        f'[model]\nname_or_path = "{TINY_MODEL}"\n[data]\npath = "{data}"\neval_fraction = 0\n'
        '[train]\ntechnique = "grpo"\nmicro_batch_size = 4\ngrad_accum = 1\n[grpo]\nnum_generations = 4\n' + rewards
    )
    return _preset(tmp_path, text)


def test_a_reward_whose_column_is_missing_fails_before_the_model_loads(tmp_path, capsys):
    data = _prompts(tmp_path)
    rewards = '[[grpo.rewards]]\nname = "format"\npattern = ".*"\n[[grpo.rewards]]\nname = "math_answer"\n'
    path = _grpo_preset(tmp_path, data, rewards)
    for command in ("validate", "data"):
        first, hint = _user_error(capsys, command, str(path))
        assert f"{data}: reward 'math_answer' (grpo.rewards[1]) reads the column 'answer'" in first
        assert "(their columns: prompt)" in first
        assert "answer_column" in hint and "format" in hint


@pytest.mark.parametrize(
    ("rows", "reward"),
    [
        ({"answer": "1"}, {"name": "math_answer"}),
        ({"solution": "1"}, {"name": "exact_match", "answer_column": "solution"}),
        ({}, {"name": "json"}),
    ],
)
def test_rewards_with_their_columns_pass(tmp_path, rows, reward):
    from smoltrain.config.schema import DataSection
    from smoltrain.engine.data import prepare_datasets

    data = DataSection(path=_prompts(tmp_path, **rows), eval_fraction=0)
    prepare_datasets(data, "grpo", seed=0, rewards=[RewardFunction(**reward)])


def test_sft_data_gives_grpo_its_answer_column(tmp_path):
    from smoltrain.config.schema import DataSection
    from smoltrain.engine.data import prepare_datasets

    path = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "1 + 1 = ?", "completion": "#### 2"}] * 2)
    prepared = prepare_datasets(DataSection(path=path, eval_fraction=0), "grpo", seed=0,
                                rewards=[RewardFunction(name="math_answer")])  # fmt: skip
    assert "answer" in prepared.train.column_names


def test_columns_read_lists_the_answer_rewards_only():
    specs = [RewardFunction(name="format", pattern=".*"), RewardFunction(name="exact_match", answer_column="gold")]
    assert columns_read(specs) == [("grpo.rewards[1]", "exact_match", "gold")]


def test_a_shipped_grpo_preset_still_validates(capsys):
    assert main(["validate", str(PRESETS_DIR / "demo-grpo.toml")]) == 0
    assert "ok:" in capsys.readouterr().out


def test_prepare_without_rewards_checks_no_columns(tmp_path):
    # Callers that pass no rewards (the shapes' own tests) see the rows as before.
    prepared = prepare(_prompts(tmp_path), "grpo")
    assert prepared.train.column_names == ["prompt"]


# ---------------------------------------------------------------------------------- --name


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".hidden"])
def test_a_run_name_outside_runs_is_refused_before_any_folder_is_made(tmp_path, capsys, name):
    code = main(["run", str(PRESETS_DIR / "demo-sft.toml"), "--set", f"output_dir={tmp_path / 'runs'}", "--name", name])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--name {name!r}" in err and "hint: " in err
    assert list(tmp_path.iterdir()) == [], "nothing was created, inside runs/ or next to it"
