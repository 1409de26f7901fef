"""Each supported row shape is detected and converted to TRL's format with the right content."""

from __future__ import annotations

from pathlib import Path

import pytest

from smoltrain.errors import DataError
from tests.unit.datakit import prepare, write_jsonl


def test_plain_text(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "Once upon a time", "id": 1}, {"text": "The end", "id": 2}])
    out = prepare(path)
    assert (out.format, out.trl_format) == ("text", "text")
    assert out.train.column_names == ["text"]  # other columns are dropped
    assert out.train["text"] == ["Once upon a time", "The end"]


def test_openai_messages_keep_system_turn_and_only_role_and_content(tmp_path: Path) -> None:
    chat = [
        {"role": "system", "content": "Be brief.", "name": "sys"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4", "weight": 1},
    ]
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": chat, "source": "x"}] * 2)
    out = prepare(path)
    assert (out.format, out.trl_format) == ("messages", "messages")
    assert out.train.column_names == ["messages"]
    assert out.train[0]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]


def test_prompt_completion_strings(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "The sky is", "completion": " blue."}] * 3)
    out = prepare(path)
    assert (out.format, out.trl_format) == ("prompt_completion", "prompt_completion")
    assert out.train[0] == {"prompt": "The sky is", "completion": " blue."}


def test_prompt_completion_of_chat_turns(tmp_path: Path) -> None:
    row = {"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "assistant", "content": "Hello!"}]}
    out = prepare(write_jsonl(tmp_path / "pc.jsonl", [row] * 2))
    assert out.trl_format == "prompt_completion"
    assert out.train[0] == row


def test_alpaca_instruction_with_and_without_input(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Translate to French.", "input": "cat", "output": "chat"},
        {"instruction": "Name a colour.", "input": "", "output": "Red"},
        {"instruction": "Count to two.", "output": "1 2"},  # no input key at all
    ]
    out = prepare(write_jsonl(tmp_path / "alpaca.jsonl", rows))
    assert (out.format, out.trl_format) == ("instruction", "messages")
    assert [m[0]["content"] for m in out.train["messages"]] == ["Translate to French.\n\ncat", "Name a colour.", "Count to two."]
    assert out.train[0]["messages"] == [
        {"role": "user", "content": "Translate to French.\n\ncat"},
        {"role": "assistant", "content": "chat"},
    ]


def test_sharegpt_roles_are_mapped(tmp_path: Path) -> None:
    conv = [
        {"from": "system", "value": "You are helpful."},
        {"from": "human", "value": "Hi"},
        {"from": "gpt", "value": "Hello"},
        {"from": "user", "value": "Again"},
        {"from": "model", "value": "Hello again"},
    ]
    out = prepare(write_jsonl(tmp_path / "sg.jsonl", [{"conversations": conv}] * 2))
    assert (out.format, out.trl_format) == ("sharegpt", "messages")
    assert out.train[0]["messages"] == [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Again"},
        {"role": "assistant", "content": "Hello again"},
    ]


def test_sharegpt_turns_under_a_messages_column(tmp_path: Path) -> None:
    conv = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    out = prepare(write_jsonl(tmp_path / "sg.jsonl", [{"messages": conv}] * 2))
    assert out.format == "sharegpt"
    assert out.train[0]["messages"][1] == {"role": "assistant", "content": "Hello"}


def test_chat_wins_over_text_when_both_are_present(tmp_path: Path) -> None:
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    path = write_jsonl(tmp_path / "both.jsonl", [{"text": "flat", "messages": chat}] * 2)
    assert prepare(path).format == "messages"
    # An explicit format skips detection.
    explicit = prepare(path, format="text")
    assert (explicit.format, explicit.train["text"]) == ("text", ["flat", "flat"])


def test_explicit_format_needs_its_columns(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": "a"}])
    with pytest.raises(DataError) as err:
        prepare(path, format="instruction")
    assert "t.jsonl" in err.value.message
    assert "instruction, output" in err.value.message and "columns found: text" in err.value.message


def test_column_mapping_renames_before_detection(tmp_path: Path) -> None:
    rows = [{"question": "Capital of France?", "answer": "Paris", "prompt": "ignored"}] * 2
    out = prepare(write_jsonl(tmp_path / "qa.jsonl", rows), columns={"prompt": "question", "completion": "answer"})
    assert out.format == "prompt_completion"
    assert out.train[0] == {"prompt": "Capital of France?", "completion": "Paris"}


def test_column_mapping_to_a_missing_column_lists_the_columns_found(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError) as err:
        prepare(path, columns={"prompt": "query", "completion": "answer"})
    msg = err.value.message
    assert "qa.jsonl" in msg and "'query'" in msg and "question, answer" in msg


def test_column_mapping_to_an_unknown_name_is_an_error(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "a"}])
    with pytest.raises(DataError) as err:
        prepare(path, columns={"promt": "question"})
    assert "promt" in err.value.message and "prompt" in err.value.hint


def test_unknown_shape_names_file_columns_and_expected_shapes(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "reply": "a"}])
    with pytest.raises(DataError) as err:
        prepare(path)
    msg = err.value.message
    assert "odd.jsonl" in msg and "question, reply" in msg
    for expected in ("text (text)", "messages (messages)", "prompt_completion (prompt, completion)",
                     "instruction (instruction, output", "sharegpt (conversations)"):
        assert expected in msg
    assert "data.columns" in err.value.hint


def test_preference_data_for_sft_says_what_it_looks_like(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "pref.jsonl", [{"prompt": "p", "chosen": "good", "rejected": "bad"}])
    with pytest.raises(DataError) as err:
        prepare(path)
    assert "pref.jsonl" in err.value.message and "preference" in err.value.message
