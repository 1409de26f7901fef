"""Helpers for the data tests: write a JSON-lines file, prepare it for a technique, catch its error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from smoltrain.config.schema import DataSection
from smoltrain.engine.data import PreparedData, prepare_datasets
from smoltrain.errors import DataError


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def prepare(path: str, technique: str = "sft", *, seed: int = 0, **data: Any) -> PreparedData:
    """Prepare `path` with no eval split unless the test asks for one."""
    data.setdefault("eval_fraction", 0.0)
    return prepare_datasets(DataSection(path=path, **data), technique, seed=seed)


def error_for(path: str, technique: str = "sft", **data: Any) -> DataError:
    with pytest.raises(DataError) as err:
        prepare(path, technique, **data)
    return err.value
