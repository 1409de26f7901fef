"""Data checked against the model's chat template before training, from the tokenizer alone: system turns
folded and counted, a row the template refuses named with its line, prompt/completion text in the chat
template or raw, truncation counted; and `smoltrain data` / `smoltrain validate` say so."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
from transformers import AutoTokenizer

from smoltrain.config.schema import DataSection
from smoltrain.engine.data import prepare_datasets
from smoltrain.engine.data.chat_template import FOLDED_DROPPED, FOLDED_REFUSED
from smoltrain.errors import DataError, ModelError
from tests.conftest import DEMO_DATA, TINY_MODEL


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def chat(system=None, user="What is 2 + 3?", answer="2 + 3 = 5."):
    turns = [{"role": "system", "content": system}] if system else []
    return {"messages": [*turns, {"role": "user", "content": user}, {"role": "assistant", "content": answer}]}


def smoltrain(capsys, *args):
    """The command line in this process (the subprocess path has its own tests in test_cli.py)."""
    from smoltrain.cli import main

    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def preset(tmp_path, model, data, extra=""):
    path = tmp_path / "p.toml"
    path.write_text(f'[model]\nname_or_path = "{model}"\n[data]\npath = "{data}"\neval_fraction = 0\n{extra}')
    return path


@pytest.mark.parametrize(("name", "fix"), [("gemma-2", FOLDED_REFUSED), ("mistral-v0.3", FOLDED_DROPPED), ("llama-3.2", None)])
def test_system_turns_are_folded_where_the_template_has_no_place_for_them_and_counted(name, fix, family_model, tmp_path):
    rows = [chat("Be brief."), chat(), chat("Be kind.")]
    data = DataSection(path=str(write_jsonl(tmp_path / "d.jsonl", rows)), eval_fraction=0)
    tokenizer = AutoTokenizer.from_pretrained(family_model(name))
    prepared = prepare_datasets(data, "sft", seed=0, tokenizer=tokenizer, model=name)
    assert prepared.report.fixed == ({fix: 2} if fix else {})
    if fix:
        first = prepared.train[0]["messages"]
        assert first[0] == {"role": "user", "content": "Be brief.\n\nWhat is 2 + 3?"}
        assert f"{fix}: 2 rows" in prepared.report.summary()
    # The same fold reaches DPO's prompts and GRPO's.
    dpo = prepare_datasets(DataSection(path=str(DEMO_DATA / "dpo.jsonl"), max_rows=20, eval_fraction=0), "dpo", seed=0,
                           tokenizer=tokenizer, model=name)  # fmt: skip
    assert all(t["role"] != "system" for row in dpo.train for t in row["prompt"]) == (fix is not None)


def test_a_row_the_template_refuses_stops_with_its_line_and_the_templates_words(family_model, tmp_path, capsys):
    two_users = {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"},
                              {"role": "assistant", "content": "Hello."}]}  # fmt: skip
    path = write_jsonl(tmp_path / "d.jsonl", [chat(), chat(), two_users, chat()])
    tokenizer = AutoTokenizer.from_pretrained(family_model("gemma-2"))
    with pytest.raises(DataError) as err:
        prepare_datasets(DataSection(path=str(path), eval_fraction=0), "sft", seed=0, tokenizer=tokenizer, model="g")
    assert "line 3" in err.value.message and "Conversation roles must alternate" in err.value.message
    # The same one line from the command line, before any weights load, with exit code 2.
    for command in ("data", "validate"):
        result = smoltrain(capsys, command, str(preset(tmp_path, family_model("gemma-2"), path)))
        assert result.returncode == 2, result.stderr
        assert "line 3" in result.stderr and "Traceback" not in result.stderr and "crashed" not in result.stderr


def test_prompt_completion_text_trains_in_the_chat_template_unless_raw_is_asked(family_model, tmp_path):
    path = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "Add 2 and 3.", "completion": "5"}] * 4)
    tokenizer = AutoTokenizer.from_pretrained(family_model("llama-3.2"))

    def prepared(template):
        data = DataSection(path=str(path), eval_fraction=0, template=template)
        return prepare_datasets(data, "sft", seed=0, tokenizer=tokenizer, model="m")

    def trained(row):
        return tokenizer.decode([t for t, m in zip(row["input_ids"], row["assistant_masks"]) if m])

    chat_rows, raw_rows = prepared("chat"), prepared("raw")
    assert (chat_rows.trl_format, chat_rows.text_format) == ("messages", "chat template")
    assert "<|start_header_id|>user" in tokenizer.decode(chat_rows.train[0]["input_ids"])
    assert trained(chat_rows.train[0]) == "5<|eot_id|>"
    assert (raw_rows.trl_format, raw_rows.text_format) == ("prompt_completion", "raw text")
    raw_text = tokenizer.decode(raw_rows.train[0]["input_ids"])
    assert raw_text.startswith("<|begin_of_text|>Add 2 and 3.") and "<|start_header_id|>" not in raw_text
    assert trained(raw_rows.train[0]).strip() == "5<|eot_id|>", "the completion and the EOS, as TRL trains raw text"


def test_chat_rows_on_a_model_without_a_chat_template_name_the_model(tmp_path):
    model = tmp_path / "base-model"
    shutil.copytree(TINY_MODEL, model)
    config = json.loads((model / "tokenizer_config.json").read_text())
    config.pop("chat_template")
    (model / "tokenizer_config.json").write_text(json.dumps(config))
    tokenizer = AutoTokenizer.from_pretrained(model)
    with pytest.raises(ModelError, match="has no chat template"):
        prepare_datasets(DataSection(path=str(DEMO_DATA / "sft.jsonl"), max_rows=5), "sft", seed=0,
                         tokenizer=tokenizer, model=str(model))  # fmt: skip


def test_smoltrain_data_counts_what_max_length_cuts_and_stops_when_nothing_is_left(family_model, tmp_path, capsys):
    model = family_model("llama-3.2")
    path = preset(tmp_path, model, DEMO_DATA / "sft.jsonl", "max_rows = 50\n[train]\nmax_length = 90\n")
    result = smoltrain(capsys, "data", str(path), "--rows", "1")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "trained as messages, chat template (mask from spans matched in the rendered text)" in out
    truncated = int(out.split("train.max_length 90: ")[1].split(" of ")[0])
    assert truncated > 0 and "trained tokens cut" in out
    assert "«" in out and "<|eot_id|>»" in out, "the first row is shown with its trained tokens marked"
    # Llama-3.2's template puts ~40 tokens of header before any answer: at 16 tokens nothing is left.
    result = smoltrain(capsys, "data", str(path), "--set", "train.max_length=16")
    assert result.returncode == 2 and "lose every trained token to train.max_length = 16" in result.stderr


def test_validate_checks_the_data_with_the_tokenizer_and_says_what_it_could_not_check_offline(capsys):
    import os

    result = smoltrain(capsys, "validate", "demo")
    assert result.returncode == 0, result.stderr
    assert "sft: 2000 of 2000 rows kept" in result.stdout and "grpo: 800 of 800 rows kept" in result.stdout
    # Offline as a user sets it (the hub libraries read HF_HUB_OFFLINE when they are imported).
    offline = subprocess.run([sys.executable, "-m", "smoltrain.cli", "validate", "sft-qwen3-0.6b"], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert offline.returncode == 0, offline.stderr
    assert "data and chat template not checked: model.name_or_path = 'Qwen/Qwen3-0.6B': not in the local" in offline.stdout
