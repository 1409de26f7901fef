"""Reading local files and hub ids: every format, and every broken file named with its line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.datakit import error_for, prepare, write_jsonl

TEXTS = [{"text": f"row {i}"} for i in range(10)]


# --- formats -----------------------------------------------------------------------------------


def test_csv_with_quoted_commas_and_line_breaks(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text('prompt,completion\n"Hello, you",Hi\n"two\nlines","a ""quote"""\n,empty\n', encoding="utf-8")
    out = prepare(str(path))
    assert out.train["prompt"] == ["Hello, you", "two\nlines"]
    assert out.train["completion"] == ["Hi", 'a "quote"']
    # The record after a two-line field starts on line 5: the report points there.
    assert out.report.first_dropped_at == {"empty prompt": "line 5"}


def test_tsv(tmp_path: Path) -> None:
    path = tmp_path / "t.tsv"
    path.write_text("text\tid\nhello, world\t1\n", encoding="utf-8")
    assert prepare(str(path)).train["text"] == ["hello, world"]


def test_csv_row_with_too_many_fields_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("text\nok\nnot, quoted\n", encoding="utf-8")
    err = error_for(str(path))
    assert f"{path}: line 3:" in err.message and "2 fields" in err.message


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    path = tmp_path / "chat.parquet"
    pq.write_table(pa.Table.from_pylist([{"messages": chat, "n": 1}, {"messages": chat[:1], "n": 2}]), path)
    out = prepare(str(path))
    assert out.format == "messages" and out.train[0]["messages"] == chat
    assert out.report.first_dropped_at == {"no assistant turn": "row 2"}


def test_json_list_and_json_lines_named_json(tmp_path: Path) -> None:
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(TEXTS[:3], indent=2), encoding="utf-8")
    assert prepare(str(listed)).train["text"] == ["row 0", "row 1", "row 2"]
    lines = tmp_path / "lines.json"
    write_jsonl(lines, TEXTS[:3])
    assert prepare(str(lines)).train["text"] == ["row 0", "row 1", "row 2"]


def test_utf8_bom_and_blank_lines_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"text": "caf\xc3\xa9"}\n\n{"text": "b"}\n')
    assert prepare(str(path)).train["text"] == ["café", "b"]


def test_folder_of_mixed_files(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"text": "from jsonl"}])
    (folder / "b.csv").write_text("text\nfrom csv\n\n", encoding="utf-8")
    (folder / "README.md").write_text("not data", encoding="utf-8")
    write_jsonl(folder / "c.jsonl", [{"text": "x"}, {"text": ""}])
    out = prepare(str(folder))
    assert out.train["text"] == ["from jsonl", "from csv", "x"]
    assert out.report.first_dropped_at == {"empty text": "c.jsonl line 2"}


# --- slices and max_rows -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("split", "expected"),
    [("train", list(range(10))), ("train[:3]", [0, 1, 2]), ("train[7:]", [7, 8, 9]),
     ("train[2:4]", [2, 3]), ("train[:20%]", [0, 1]), ("train[-2:]", [8, 9])],
)
def test_local_split_slices(tmp_path: Path, split: str, expected: list[int]) -> None:
    out = prepare(write_jsonl(tmp_path / "t.jsonl", TEXTS), split=split)
    assert out.train["text"] == [f"row {i}" for i in expected]


def test_slice_keeps_line_numbers_for_reports(tmp_path: Path) -> None:
    rows = TEXTS[:5] + [{"text": " "}] + TEXTS[5:]
    out = prepare(write_jsonl(tmp_path / "t.jsonl", rows), split="train[4:]")
    assert out.report.first_dropped_at == {"empty text": "line 6"}


def test_local_file_has_no_test_split(tmp_path: Path) -> None:
    err = error_for(write_jsonl(tmp_path / "t.jsonl", TEXTS), split="test")
    assert "t.jsonl" in err.message and "'test'" in err.message and "train[:1000]" in err.hint


def test_max_rows_keeps_the_first_rows(tmp_path: Path) -> None:
    out = prepare(write_jsonl(tmp_path / "t.jsonl", TEXTS), max_rows=4)
    assert out.train["text"] == ["row 0", "row 1", "row 2", "row 3"]
    assert out.report.rows_read == 4


# --- broken files --------------------------------------------------------------------------------


def test_bad_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b"}\n{"text": "c" "d"}\n', encoding="utf-8")
    err = error_for(str(path))
    assert err.message.startswith(f"{path}: line 3: not valid JSON (Expecting ',' delimiter")
    assert err.hint


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text('{"text": "a"}\n["text"]\n', encoding="utf-8")
    assert "line 2: expected a JSON object, got a list" in error_for(str(path)).message


def test_bad_json_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('[\n  {"text": "a"},\n  {"text": }\n]\n', encoding="utf-8")
    assert f"{path}: line 3: not valid JSON" in error_for(str(path)).message


def test_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("text\nok\ncaf\xe9\n".encode("latin-1"))
    err = error_for(str(path))
    assert err.message.startswith(f"{path}: line 3: not UTF-8")
    assert "UTF-8" in err.hint


@pytest.mark.parametrize("content", ["", "\n  \n", "text\n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / ("empty.csv" if content.startswith("text") else "empty.jsonl")
    path.write_text(content, encoding="utf-8")
    err = error_for(str(path))
    assert str(path) in err.message and ("empty" in err.message or "no rows" in err.message)


@pytest.mark.parametrize("path", ["missing.jsonl", "./data/train", "~/nope/data.csv", "a/b/c", "/abs/file"])
def test_missing_file(path: str) -> None:
    err = error_for(path)
    assert err.message == f"{path}: file not found"
    assert "relative paths" in err.hint


def test_unsupported_file_type_in_a_path(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("hello\n", encoding="utf-8")
    err = error_for(str(path))
    assert "data.txt" in err.message and ".jsonl" in err.hint


# --- hub ids ------------------------------------------------------------------------------------


def test_hub_id_offline_fails_fast_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    err = error_for("smoltrain-test/surely-not-cached")
    assert time.monotonic() - start < 15
    assert "smoltrain-test/surely-not-cached" in err.message
    assert "network" in err.hint and "local files work offline" in err.hint


def test_hub_id_without_network_fails_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """No HF_HUB_OFFLINE, no network: a connect that fails must not lead to half a minute of retries."""
    import socket

    def no_network(*args: Any, **kwargs: Any) -> socket.socket:
        raise OSError("Network is unreachable")

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    for proxy in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setattr(socket, "create_connection", no_network)
    start = time.monotonic()
    err = error_for("smoltrain-test/surely-not-cached")
    assert time.monotonic() - start < 15
    assert "smoltrain-test/surely-not-cached" in err.message and "network" in err.hint


def test_hub_dataset_glue(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in for the download: config and split reach load_dataset, rows are checked by 'row N'."""
    import datasets

    calls: list[tuple[str, str | None, str]] = []
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]
    rows = [{"messages": chat, "source": "a"}] * 3 + [{"messages": chat[:1], "source": "b"}] + [{"messages": chat, "source": "c"}]

    def fake_load_dataset(path: str, name: str | None = None, split: str | None = None) -> datasets.Dataset:
        calls.append((path, name, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no network probe; the stand-in needs none
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    out = prepare("org/chats", config="en", split="train[:5]", max_rows=4)
    assert calls == [("org/chats", "en", "train[:5]")]
    assert out.train.column_names == ["messages"] and len(out.train) == 3
    assert out.report.summary() == "org/chats (en, train[:5]): 4 rows read, 3 kept; dropped 1 (no assistant turn: 1, first at row 4)"


def test_hub_unknown_split_is_a_data_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def fake_load_dataset(path: str, name: str | None = None, split: str | None = None) -> datasets.Dataset:
        raise ValueError('Unknown split "validation". Should be one of [\'train\'].')

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    err = error_for("org/chats", split="validation")
    assert err.message.startswith("org/chats (validation): could not load hub dataset (Unknown split")
    assert "data.split" in err.hint
