"""Eval rows: held out by fraction with the run's seed, or read from a split or file of their own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from smoltrain.config.schema import DataSection
from smoltrain.engine.data import PreparedData, prepare_datasets
from smoltrain.errors import DataError
from tests.unit.datakit import write_jsonl


def texts(n: int, prefix: str = "row") -> list[dict[str, str]]:
    return [{"text": f"{prefix} {i}"} for i in range(n)]


def prepare(path: str, seed: int = 0, **data: Any) -> PreparedData:
    return prepare_datasets(DataSection(path=path, **data), "sft", seed=seed)


def test_fraction_holds_out_rows_without_overlap(tmp_path: Path) -> None:
    out = prepare(write_jsonl(tmp_path / "t.jsonl", texts(40)), eval_fraction=0.25)
    assert out.eval is not None
    assert (len(out.train), len(out.eval)) == (30, 10)
    assert sorted(list(out.train["text"]) + list(out.eval["text"])) == sorted(f"row {i}" for i in range(40))
    assert out.report.rows_kept == 40  # the report covers the whole source


def test_same_seed_same_split_other_seed_other_split(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", texts(40))
    first = prepare(path, seed=1, eval_fraction=0.25)
    again = prepare(path, seed=1, eval_fraction=0.25)
    other = prepare(path, seed=2, eval_fraction=0.25)
    assert first.eval is not None and again.eval is not None and other.eval is not None
    assert first.eval["text"] == again.eval["text"]
    assert first.train["text"] == again.train["text"]
    assert sorted(first.eval["text"]) != sorted(other.eval["text"])


def test_small_fraction_still_gives_one_eval_row(tmp_path: Path) -> None:
    out = prepare(write_jsonl(tmp_path / "t.jsonl", texts(5)), eval_fraction=0.01)
    assert out.eval is not None and (len(out.train), len(out.eval)) == (4, 1)


def test_large_fraction_still_leaves_one_train_row(tmp_path: Path) -> None:
    out = prepare(write_jsonl(tmp_path / "t.jsonl", texts(2)), eval_fraction=0.9)
    assert out.eval is not None and (len(out.train), len(out.eval)) == (1, 1)


def test_one_row_cannot_be_split(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        prepare(write_jsonl(tmp_path / "one.jsonl", texts(1)), eval_fraction=0.1)
    assert "one.jsonl" in err.value.message and "eval_fraction = 0" in err.value.hint


def test_zero_fraction_means_no_eval(tmp_path: Path) -> None:
    out = prepare(write_jsonl(tmp_path / "one.jsonl", texts(1)), eval_fraction=0.0)
    assert out.eval is None and len(out.train) == 1


def test_eval_split_as_a_slice_of_a_local_file(tmp_path: Path) -> None:
    out = prepare(write_jsonl(tmp_path / "t.jsonl", texts(10)), split="train[:80%]", eval_split="train[80%:]")
    assert out.eval is not None
    assert out.train["text"] == [f"row {i}" for i in range(8)]
    assert out.eval["text"] == ["row 8", "row 9"]


def test_eval_split_as_another_file_with_its_own_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # relative paths, as a preset would have them
    train = write_jsonl(Path("train.jsonl"), texts(4))
    chat = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    evalf = write_jsonl(Path("eval.jsonl"), [{"text": "e"}, {"text": "f"}, {"text": ""}])
    out = prepare(train, eval_split=evalf)
    assert out.eval is not None and out.eval["text"] == ["e", "f"]
    assert out.eval_report is not None and out.eval_report.summary().endswith("dropped 1 (empty text: 1, first at line 3)")

    # A chat eval file for a plain-text training file cannot share one collator: an error.
    chat_eval = write_jsonl(Path("chat_eval.jsonl"), [{"messages": chat}])
    with pytest.raises(DataError) as err:
        prepare(train, eval_split=chat_eval)
    assert "chat_eval.jsonl" in err.value.message and "train.jsonl" in err.value.message


def test_folder_with_split_files(tmp_path: Path) -> None:
    """A downloaded hub dataset's folder: file names say the split, as on the hub."""
    write_jsonl(tmp_path / "train-00000-of-00002.jsonl", texts(3, "a"))
    write_jsonl(tmp_path / "train-00001-of-00002.jsonl", texts(2, "b"))
    write_jsonl(tmp_path / "test.jsonl", texts(2, "t"))
    out = prepare(str(tmp_path), eval_split="test")
    assert list(out.train["text"]) == ["a 0", "a 1", "a 2", "b 0", "b 1"]
    assert out.eval is not None and list(out.eval["text"]) == ["t 0", "t 1"]
    with pytest.raises(DataError) as err:
        prepare(str(tmp_path), eval_split="validation")
    assert "validation" in err.value.message and "splits found: test, train" in err.value.message


def test_folder_saved_with_save_to_disk(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(texts(6)), "test": datasets.Dataset.from_list(texts(2, "t"))}
    ).save_to_disk(str(tmp_path / "saved"))
    out = prepare(str(tmp_path / "saved"), split="train[:4]", eval_split="test")
    assert list(out.train["text"]) == ["row 0", "row 1", "row 2", "row 3"]
    assert out.eval is not None and list(out.eval["text"]) == ["t 0", "t 1"]
