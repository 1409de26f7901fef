"""Preference pairs for reward and DPO: every source form lands in TRL's preference format with the right content."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smoltrain.engine.data import PreparedData
from smoltrain.errors import DataError
from tests.unit import datakit
from tests.unit.datakit import write_jsonl


def prepare(path: str, technique: str = "dpo", **data: Any) -> PreparedData:
    return datakit.prepare(path, technique, **data)

SYSTEM = {"role": "system", "content": "Answer briefly."}
USER = {"role": "user", "content": "What colour is the sky?"}
GOOD = {"role": "assistant", "content": "Blue."}
BAD = {"role": "assistant", "content": "Green."}






@pytest.mark.parametrize("technique", ["reward", "dpo"])
def test_explicit_prompt_strings(tmp_path: Path, technique: str) -> None:
    rows = [{"prompt": "The sky is", "chosen": " blue.", "rejected": " green.", "id": i} for i in range(3)]
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows), technique)
    assert (out.format, out.trl_format) == ("preference", "preference")
    assert out.train.column_names == ["prompt", "chosen", "rejected"]  # other columns are dropped
    assert out.train[0] == {"prompt": "The sky is", "chosen": " blue.", "rejected": " green."}


@pytest.mark.parametrize("technique", ["reward", "dpo"])
def test_explicit_prompt_of_turns_keeps_the_system_turn(tmp_path: Path, technique: str) -> None:
    row = {"prompt": [SYSTEM, USER], "chosen": [GOOD], "rejected": [BAD]}
    out = prepare(write_jsonl(tmp_path / "p.jsonl", [row] * 2), technique)
    assert (out.format, out.trl_format) == ("preference", "preference")
    assert out.train[0] == row


def test_prompt_repeated_at_the_start_of_both_answers_is_removed_there(tmp_path: Path) -> None:
    row = {"prompt": [USER], "chosen": [USER, GOOD], "rejected": [USER, BAD]}
    out = prepare(write_jsonl(tmp_path / "p.jsonl", [row] * 2))
    assert out.train[0] == {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}


def test_implicit_conversations_get_their_shared_prompt_extracted_for_dpo(tmp_path: Path) -> None:
    follow_up = {"role": "user", "content": "And at night?"}
    rows = [
        {"chosen": [SYSTEM, USER, GOOD], "rejected": [SYSTEM, USER, BAD]},
        # Multi-turn: earlier turns shared by both sides belong to the prompt.
        {"chosen": [USER, GOOD, follow_up, {"role": "assistant", "content": "Black."}], "rejected": [USER, GOOD, follow_up, BAD]},
    ]
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows))
    assert (out.format, out.trl_format) == ("preference_implicit", "preference")
    assert out.train[0] == {"prompt": [SYSTEM, USER], "chosen": [GOOD], "rejected": [BAD]}
    assert out.train[1]["prompt"] == [USER, GOOD, follow_up]
    assert (out.train[1]["chosen"][0]["content"], out.train[1]["rejected"][0]["content"]) == ("Black.", "Green.")


def test_implicit_conversations_train_a_reward_model_whole(tmp_path: Path) -> None:
    # RewardTrainer scores prompt + answer as one sequence: nothing to extract, and no row to lose.
    rows = [{"chosen": [SYSTEM, USER, GOOD], "rejected": [SYSTEM, USER, BAD]}, {"chosen": [GOOD], "rejected": [BAD]}]
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows), "reward")
    assert (out.format, out.trl_format) == ("preference_implicit", "preference_implicit")
    assert out.train.column_names == ["chosen", "rejected"]
    assert out.train.to_list() == rows


def test_implicit_strings_split_at_a_word_boundary(tmp_path: Path) -> None:
    rows = [
        {"chosen": "Q: What is 2+2?\nA: The answer is 4", "rejected": "Q: What is 2+2?\nA: The answer is 45"},
        {"chosen": "Q: Hi\nA: Hello!", "rejected": "Q: Hi\nA: Go away."},
    ]
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows))
    assert (out.format, out.trl_format) == ("preference_implicit", "preference")
    assert out.train[0] == {"prompt": "Q: What is 2+2?\nA: The answer is", "chosen": " 4", "rejected": " 45"}
    assert out.train[1] == {"prompt": "Q: Hi\nA:", "chosen": " Hello!", "rejected": " Go away."}


def test_text_prompt_beside_whole_conversations_is_read_as_implicit(tmp_path: Path) -> None:
    # UltraFeedback's layout: "prompt" repeats the user turn that chosen and rejected already hold.
    row = {"prompt": USER["content"], "chosen": [USER, GOOD], "rejected": [USER, BAD]}
    out = prepare(write_jsonl(tmp_path / "uf.jsonl", [row] * 2))
    assert out.format == "preference_implicit"
    assert out.train[0] == {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}


def test_anthropic_hh_text_becomes_chat_turns(tmp_path: Path) -> None:
    shared = "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Name a colour."
    row = {"chosen": shared + "\n\nAssistant: Blue.", "rejected": shared + "\n\nAssistant: No."}
    path = write_jsonl(tmp_path / "hh.jsonl", [row] * 2)
    out = prepare(path)
    assert (out.format, out.trl_format) == ("hh_rlhf", "preference")
    assert out.train[0]["prompt"] == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Name a colour."},
    ]
    assert out.train[0]["chosen"] == [{"role": "assistant", "content": "Blue."}]
    reward = prepare(path, "reward")
    assert reward.trl_format == "preference_implicit" and len(reward.train[0]["chosen"]) == 4


def test_column_mapping_names_the_pair(tmp_path: Path) -> None:
    rows = [{"question": "2+2?", "good": "4", "bad": "5"}] * 2
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows), columns={"prompt": "question", "chosen": "good", "rejected": "bad"})
    assert out.train[0] == {"prompt": "2+2?", "chosen": "4", "rejected": "5"}


def test_bad_pairs_are_dropped_and_counted(tmp_path: Path) -> None:
    good: dict[str, Any] = {"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}
    rows: list[dict[str, Any]] = [good] * 8 + [
        {"prompt": [USER], "chosen": [GOOD], "rejected": [GOOD]},  # identical
        {"prompt": [USER], "chosen": [GOOD], "rejected": [{"role": "assistant", "content": " "}]},  # empty side
        {"prompt": [USER], "chosen": [GOOD], "rejected": []},  # no turns at all
        {"prompt": [USER], "chosen": [GOOD, USER], "rejected": [BAD]},  # ends with the user
        {"prompt": [USER, GOOD], "chosen": [GOOD], "rejected": [BAD]},  # prompt already answered
        {"prompt": [USER], "chosen": "Blue.", "rejected": [BAD]},  # text among turns
    ]
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows))
    assert (out.report.rows_read, out.report.rows_kept, len(out.train)) == (14, 8, 8)
    assert out.report.dropped == {
        "chosen and rejected are identical": 1,
        "empty assistant content": 1,
        "empty rejected": 1,
        "chosen does not end with an assistant turn": 1,
        "prompt ends with an assistant turn": 1,
        "chosen is not a list of turns": 1,
    }
    assert out.report.first_dropped_at["chosen and rejected are identical"] == "line 9"


def test_dpo_drops_pairs_that_share_no_prompt(tmp_path: Path) -> None:
    rows: list[dict[str, Any]] = [{"chosen": "Q: a\nA: yes", "rejected": "Q: a\nA: no"}] * 3
    rows.append({"chosen": "Yes ", "rejected": "No"})  # TRL's own extract_prompt would make "Yes" the prompt
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows))
    assert out.report.dropped == {"no prompt shared by chosen and rejected": 1}
    assert prepare(write_jsonl(tmp_path / "r.jsonl", rows), "reward").report.rows_kept == 4


def test_mostly_identical_pairs_are_an_error(tmp_path: Path) -> None:
    rows = [{"prompt": "p", "chosen": "same", "rejected": "same"}] * 3 + [{"prompt": "p", "chosen": "a", "rejected": "b"}]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(DataError) as err:
        prepare(path)
    assert err.value.message.startswith(f"{path}: line 1: chosen and rejected are identical (3 of 4 rows")


def test_pairs_hold_out_eval_rows(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "chosen": "a", "rejected": "b"} for i in range(20)]
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows), eval_fraction=0.1)
    assert out.eval is not None and (len(out.train), len(out.eval)) == (18, 2)
    assert out.eval.column_names == ["prompt", "chosen", "rejected"]
