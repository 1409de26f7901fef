"""Rows with problems are dropped and counted, never passed on silently; mostly-bad data is an error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smoltrain.errors import DataError
from tests.unit.datakit import prepare, write_jsonl


def chat(answer: Any, role: str = "assistant") -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "Q"}, {"role": role, "content": answer}]}


def test_unknown_sharegpt_role_is_dropped_and_counted(tmp_path: Path) -> None:
    good = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]}
    bad = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "bot", "value": "Hello"}]}
    out = prepare(write_jsonl(tmp_path / "sg.jsonl", [good, good, bad, good]))
    assert (out.report.rows_read, out.report.rows_kept, len(out.train)) == (4, 3, 3)
    assert out.report.dropped == {"unknown role 'bot'": 1}
    assert out.report.summary() == (
        f"{tmp_path / 'sg.jsonl'}: 4 rows read, 3 kept; dropped 1 (unknown role 'bot': 1, first at line 3)"
    )


def test_each_kind_of_bad_chat_row_is_counted(tmp_path: Path) -> None:
    good = chat("fine")
    rows = [good] * 7 + [
        chat("   "),  # whitespace-only answer
        chat(42),  # not text
        chat("x", role="user"),  # no assistant turn
        {"messages": "not a list"},
        {"messages": []},
    ]
    out = prepare(write_jsonl(tmp_path / "c.jsonl", rows))
    assert out.report.rows_kept == 7 and len(out.train) == 7
    assert out.report.dropped == {
        "empty assistant content": 1,
        "assistant content is not text": 1,
        "no assistant turn": 1,
        "messages is not a list of turns": 1,
        "empty messages": 1,
    }
    assert "first at line 8" in out.report.summary()


def test_bad_text_and_completion_rows_are_counted(tmp_path: Path) -> None:
    rows = [{"prompt": "p", "completion": "c"}] * 5 + [
        {"prompt": "p", "completion": " \n"},
        {"prompt": "p", "completion": None},
        {"prompt": ["a"], "completion": "c"},
    ]
    out = prepare(write_jsonl(tmp_path / "pc.jsonl", rows))
    assert out.report.rows_kept == 5
    assert out.report.dropped == {"empty completion": 1, "missing completion": 1, "prompt is not text": 1}


def test_reasons_name_the_users_own_columns(tmp_path: Path) -> None:
    rows = [{"q": "p", "a": "c"}] * 3 + [{"q": "p", "a": ""}]
    out = prepare(write_jsonl(tmp_path / "qa.jsonl", rows), columns={"prompt": "q", "completion": "a"})
    assert out.report.dropped == {"empty a": 1}


def test_majority_bad_file_raises_naming_file_line_and_reason(tmp_path: Path) -> None:
    rows = [chat("ok"), chat(""), chat(""), chat("ok"), chat("")]
    path = write_jsonl(tmp_path / "mostly_bad.jsonl", rows)
    with pytest.raises(DataError) as err:
        prepare(path)
    msg = err.value.message
    assert msg.startswith(f"{path}: line 2: empty assistant content")
    assert "3 of 5 rows" in msg
    assert "data.format" in err.value.hint


def test_all_rows_bad_raises(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [{"text": ""}])
    with pytest.raises(DataError) as err:
        prepare(path)
    assert "t.jsonl: line 1: empty text" in err.value.message


def test_exactly_half_bad_is_kept_with_a_report(tmp_path: Path) -> None:
    out = prepare(write_jsonl(tmp_path / "t.jsonl", [{"text": "a"}, {"text": ""}]))
    assert (out.report.rows_read, out.report.rows_kept) == (2, 1)
