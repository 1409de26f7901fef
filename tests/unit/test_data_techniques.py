"""Each technique takes its own shape of data: the wrong one is an error naming both; the bundled demo data fits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smoltrain.errors import DataError
from tests.unit.datakit import prepare, write_jsonl

DEMO_DATA = Path(__file__).resolve().parents[2] / "assets" / "data"
CHAT = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]






@pytest.mark.parametrize(
    ("technique", "row", "needs", "looks_like", "trains_with"),
    [
        ("dpo", {"messages": CHAT}, "dpo needs preference pairs, as one of: preference (prompt, chosen, rejected); "
         "preference_implicit (chosen, rejected)", "chat (SFT) data", "sft or grpo"),
        ("reward", {"prompt": "2+2?", "answer": "4"}, "reward needs preference pairs", "prompts only", "grpo"),
        ("grpo", {"text": "Once upon a time"}, "grpo needs prompts, as one of: prompt_completion (prompt, completion); "
         "prompt_only (prompt (+ optional answer))", "plain text", "sft"),
        ("grpo", {"chosen": "a", "rejected": "b"}, "grpo needs prompts", "preference pairs", "reward or dpo"),
        ("sft", {"prompt": "2+2?", "answer": "4"}, "sft needs examples to imitate", "prompts only", "grpo"),
    ],
)
def test_wrong_shape_names_what_the_technique_needs_and_what_was_found(
    tmp_path: Path, technique: str, row: dict[str, Any], needs: str, looks_like: str, trains_with: str
) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [row])
    with pytest.raises(DataError) as err:
        prepare(path, technique)
    msg = err.value.message
    assert msg.startswith(f"{path}: {needs}")
    assert f"found columns: {', '.join(row)} — this looks like {looks_like}" in msg
    assert f"trains with technique {trains_with}" in err.value.hint


def test_unknown_columns_point_at_the_column_mapping(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "odd.jsonl", [{"good": "a", "bad": "b"}])
    with pytest.raises(DataError) as err:
        prepare(path, "dpo")
    assert "found columns: good, bad" in err.value.message and "looks like" not in err.value.message
    assert "data.columns" in err.value.hint


def test_an_sft_format_cannot_be_forced_on_dpo(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "chat.jsonl", [{"messages": CHAT}])
    with pytest.raises(DataError) as err:
        prepare(path, "dpo", format="messages")
    assert "'messages' cannot be used for dpo" in err.value.message
    assert "preference" in err.value.hint


@pytest.mark.parametrize(
    ("name", "technique", "trl_format", "columns"),
    [
        ("reward.jsonl", "reward", "preference", ["prompt", "chosen", "rejected"]),
        ("dpo.jsonl", "dpo", "preference", ["prompt", "chosen", "rejected"]),
        ("kto.jsonl", "kto", "unpaired", ["prompt", "completion", "label"]),
        ("grpo.jsonl", "grpo", "prompt_only", ["prompt", "answer"]),
        ("sft.jsonl", "sft", "messages", ["messages"]),
        ("sft.jsonl", "grpo", "prompt_only", ["prompt", "answer"]),  # the SFT demo doubles as GRPO prompts
    ],
)
def test_bundled_demo_data_prepares_without_drops(name: str, technique: str, trl_format: str, columns: list[str]) -> None:
    path = DEMO_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is not built yet")
    out = prepare(str(path), technique)
    assert out.trl_format == trl_format and out.train.column_names == columns
    assert out.report.dropped == {} and out.report.rows_kept == out.report.rows_read
    first = out.train[0]
    assert isinstance(first["prompt" if "prompt" in first else "messages"], list)  # chats, so the chat template applies
