"""Prompts for GRPO: prompt-only rows keep their other columns for the reward functions; SFT rows give prompt + answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smoltrain.engine.data import PreparedData
from smoltrain.errors import DataError
from tests.unit import datakit
from tests.unit.datakit import write_jsonl


def prepare(path: str, **data: Any) -> PreparedData:
    return datakit.prepare(path, "grpo", **data)

SYSTEM = {"role": "system", "content": "Show your work, then the answer after ####."}
USER = {"role": "user", "content": "What is 2 + 3?"}
ANSWER = {"role": "assistant", "content": "2 + 3 = 5.\n#### 5"}






def test_prompt_turns_with_answer_and_other_columns_kept(tmp_path: Path) -> None:
    rows = [{"prompt": [SYSTEM, USER], "answer": "5", "level": i, "tags": ["sum"]} for i in range(3)]
    out = prepare(write_jsonl(tmp_path / "g.jsonl", rows))
    assert (out.format, out.trl_format) == ("prompt_only", "prompt_only")
    assert sorted(out.train.column_names) == ["answer", "level", "prompt", "tags"]
    assert out.train[1] == {"prompt": [SYSTEM, USER], "answer": "5", "level": 1, "tags": ["sum"]}


def test_gsm8k_question_answer_via_column_mapping(tmp_path: Path) -> None:
    rows = [{"question": "Tom has 3 apples and buys 2. How many?", "answer": "3 + 2 = 5\n#### 5"}] * 2
    out = prepare(write_jsonl(tmp_path / "gsm8k.jsonl", rows), columns={"prompt": "question"})
    assert out.format == "prompt_only"
    assert out.train.column_names == ["prompt", "answer"]
    assert out.train[0] == {"prompt": "Tom has 3 apples and buys 2. How many?", "answer": "3 + 2 = 5\n#### 5"}


def test_answer_column_can_be_mapped_too(tmp_path: Path) -> None:
    rows = [{"problem": "1 + 1?", "solution": "2"}] * 2
    out = prepare(write_jsonl(tmp_path / "m.jsonl", rows), columns={"prompt": "problem", "answer": "solution"})
    assert out.train[0] == {"prompt": "1 + 1?", "answer": "2"}


def test_bad_prompts_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [{"prompt": [USER], "answer": "5"}] * 6 + [
        {"prompt": [], "answer": "5"},
        {"prompt": [USER, ANSWER], "answer": "5"},
        {"prompt": [SYSTEM], "answer": "5"},
        {"prompt": "plain text among chats", "answer": "5"},
    ]
    out = prepare(write_jsonl(tmp_path / "g.jsonl", rows))
    assert out.report.rows_kept == 6
    assert out.report.dropped == {
        "empty prompt": 1,
        "prompt ends with an assistant turn": 1,
        "prompt ends with a system turn": 1,
        "prompt is not a list of turns": 1,
    }


def test_text_prompts_drop_blank_ones(tmp_path: Path) -> None:
    out = prepare(write_jsonl(tmp_path / "g.jsonl", [{"prompt": "Say hi."}, {"prompt": "Count."}, {"prompt": "  "}]))
    assert out.train.column_names == ["prompt"] and out.train["prompt"] == ["Say hi.", "Count."]
    assert out.report.dropped == {"empty prompt": 1}


def test_chat_data_gives_the_prompt_and_the_final_answer(tmp_path: Path) -> None:
    rows = [{"messages": [SYSTEM, USER, ANSWER], "source": "demo"}] * 3 + [{"messages": [USER, ANSWER, USER], "source": "x"}]
    out = prepare(write_jsonl(tmp_path / "sft.jsonl", rows))
    assert (out.format, out.trl_format) == ("messages", "prompt_only")
    assert out.train[0] == {"prompt": [SYSTEM, USER], "answer": ANSWER["content"], "source": "demo"}
    assert out.report.dropped == {"messages does not end with an assistant turn": 1}


def test_an_answer_column_wins_over_the_chats_last_turn(tmp_path: Path) -> None:
    rows = [{"messages": [USER, ANSWER], "answer": "5"}] * 2
    assert prepare(write_jsonl(tmp_path / "sft.jsonl", rows)).train[0] == {"prompt": [USER], "answer": "5"}


def test_prompt_completion_and_alpaca_rows_give_prompt_and_answer(tmp_path: Path) -> None:
    pc = prepare(write_jsonl(tmp_path / "pc.jsonl", [{"prompt": "2 + 3 =", "completion": " 5"}] * 2))
    assert (pc.format, pc.train[0]) == ("prompt_completion", {"prompt": "2 + 3 =", "answer": " 5"})
    alpaca = prepare(write_jsonl(tmp_path / "a.jsonl", [{"instruction": "Add.", "input": "2 3", "output": "5"}] * 2))
    assert alpaca.train[0] == {"prompt": [{"role": "user", "content": "Add.\n\n2 3"}], "answer": "5"}


def test_a_kept_column_of_mixed_types_is_named(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "g.jsonl", [{"prompt": "a", "answer": "5", "level": 1}, {"prompt": "b", "answer": "6", "level": "hard"}])
    with pytest.raises(DataError) as err:
        prepare(path)
    assert "g.jsonl" in err.value.message and "'level'" in err.value.message


def test_eval_file_must_have_the_same_columns(tmp_path: Path) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [{"prompt": "a", "answer": "1"}] * 2)
    evals = write_jsonl(tmp_path / "eval.jsonl", [{"prompt": "b"}] * 2)
    with pytest.raises(DataError) as err:
        prepare(train, eval_split=evals)
    assert "eval.jsonl" in err.value.message and "answer" in err.value.message
