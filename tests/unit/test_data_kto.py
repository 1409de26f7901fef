"""KTO's rows: labelled answers land in TRL's unpaired format, pairs are unpaired (and the report says so),
and a missing or non-boolean label stops with one line naming the file, the row and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from smoltrain.cli import main
from smoltrain.config.presets import PRESETS_DIR
from tests.unit.datakit import error_for, prepare, write_jsonl

USER = {"role": "user", "content": "What colour is the sky?"}
SYSTEM = {"role": "system", "content": "Answer briefly."}
GOOD = {"role": "assistant", "content": "Blue."}
BAD = {"role": "assistant", "content": "Green."}


def test_labelled_strings_train_as_unpaired(tmp_path: Path) -> None:
    rows = [{"prompt": "The sky is", "completion": " blue.", "label": True, "id": 1},
            {"prompt": "The sky is", "completion": " green.", "label": False, "id": 2}]  # fmt: skip
    out = prepare(write_jsonl(tmp_path / "k.jsonl", rows), "kto")
    assert (out.format, out.trl_format) == ("unpaired", "unpaired")
    assert out.train.to_list() == [{"prompt": "The sky is", "completion": " blue.", "label": True},
                                   {"prompt": "The sky is", "completion": " green.", "label": False}]  # fmt: skip


def test_labelled_turns_keep_the_system_turn_and_a_renamed_label(tmp_path: Path) -> None:
    rows = [{"prompt": [SYSTEM, USER], "completion": [GOOD], "thumbs_up": True},
            {"prompt": [USER], "completion": [BAD], "thumbs_up": False}]  # fmt: skip
    out = prepare(write_jsonl(tmp_path / "k.jsonl", rows), "kto", columns={"label": "thumbs_up"})
    assert out.train[0] == {"prompt": [SYSTEM, USER], "completion": [GOOD], "label": True}
    assert out.train[1]["label"] is False


def test_pairs_are_unpaired_chosen_desirable_and_the_report_says_so(tmp_path: Path) -> None:
    rows = [{"prompt": [USER], "chosen": [GOOD], "rejected": [BAD]}] * 3
    out = prepare(write_jsonl(tmp_path / "p.jsonl", rows), "kto")
    assert (out.format, out.trl_format) == ("preference", "unpaired")
    assert len(out.train) == 6 and out.train[:2] == {"prompt": [[USER]] * 2, "completion": [[GOOD], [BAD]],
                                                     "label": [True, False]}  # fmt: skip
    assert out.report.unpaired == 3 and "3 pairs unpaired for KTO (chosen: desirable" in out.report.summary()


@pytest.mark.parametrize(
    ("third", "said"),
    [({}, "no 'label' key"), ({"label": "yes"}, "'label' is 'yes', not true or false"), ({"label": 1}, "'label' is 1")],
)
def test_a_bad_label_names_the_file_the_row_and_the_key(tmp_path: Path, third: dict, said: str) -> None:
    rows = [{"prompt": "a", "completion": " b", "label": True}, {"prompt": "c", "completion": " d", "label": False},
            {"prompt": "e", "completion": " f", **third}]  # fmt: skip
    path = write_jsonl(tmp_path / "k.jsonl", rows)
    err = error_for(path, "kto")
    assert path in err.message and "line 3" in err.message and said in err.message
    assert "true" in err.hint and "false" in err.hint


def test_unlabelled_rows_exit_2_naming_the_file_the_row_and_the_key(tmp_path: Path, capsys) -> None:
    path = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "a", "completion": " b"}] * 4)
    assert main(["validate", str(PRESETS_DIR / "demo-kto.toml"), "--set", f"data.path={path}"]) == 2
    err = capsys.readouterr().err
    first = err.strip().splitlines()[0]
    assert path in first and "line 1" in first and "'label'" in first and "Traceback" not in err
