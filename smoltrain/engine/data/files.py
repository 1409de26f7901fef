"""Parse one local data file (.jsonl, .json, .csv, .tsv, .parquet) into rows and the line each came from.

Parsed here rather than by `datasets` so that a broken file fails with its name and line number
("sft.jsonl: line 17: not valid JSON (Expecting ',' delimiter at column 9)") and a hint, instead of
an Arrow traceback. Content problems inside well-formed rows are not judged here (see convert.py).

Imports the standard library and pyarrow (for Parquet) only; never torch or textual.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smoltrain.errors import DataError
from smoltrain.names import DATA_FILE_SUFFIXES as SUFFIXES

_UTF8_HINT = "save the file as UTF-8 (for example: iconv -f latin1 -t utf-8 in.csv > out.csv)"


def read_file(path: Path, shown: str) -> tuple[list[dict[str, Any]], str, Sequence[int]]:
    """Rows of one file, and where each starts: ("line", line numbers), or ("row"/"item", 1..n)."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(f"{shown}: unsupported file type {suffix or '(none)'!r}", hint=f"use one of {', '.join(SUFFIXES)}")
    if suffix == ".parquet":
        rows, lines = _read_parquet(path, shown), None
        unit = "row"
    else:
        text = _read_text(path, shown)
        if not text.strip():
            raise DataError(f"{shown}: the file is empty", hint="check that the file was written completely")
        if suffix == ".jsonl":
            rows, lines = _parse_json_lines(text, shown)
        elif suffix == ".json":
            rows, lines = _parse_json(text, shown)
        else:
            rows, lines = _parse_csv(text, shown, delimiter="\t" if suffix == ".tsv" else ",")
        unit = "line" if lines is not None else "item"
    if not rows:
        raise DataError(f"{shown}: the file has no rows", hint="check that the file was written completely")
    return rows, unit, lines if lines is not None else range(1, len(rows) + 1)


def _read_text(path: Path, shown: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # -sig: files saved by Excel/Notepad start with a BOM
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        bad = raw[e.start : e.start + 1].hex()
        raise DataError(f"{shown}: line {line}: not UTF-8 text (byte 0x{bad})", hint=_UTF8_HINT) from None


def _parse_json_lines(text: str, shown: str) -> tuple[list[dict[str, Any]], list[int]]:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    # split("\n"), not splitlines(): U+2028 and friends may sit unescaped inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{shown}: line {number}: not valid JSON ({e.msg} at column {e.colno})",
                hint="each line must be one complete JSON object; fix or delete that line",
            ) from None
        if not isinstance(row, dict):
            raise DataError(
                f"{shown}: line {number}: expected a JSON object, got {_json_kind(row)}",
                hint='each line must be one JSON object such as {"text": "..."}',
            )
        rows.append(row)
        lines.append(number)
    return rows, lines


def _parse_json(text: str, shown: str) -> tuple[list[dict[str, Any]], list[int] | None]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":  # more than one value: the file is JSON lines named .json
            return _parse_json_lines(text, shown)
        raise DataError(
            f"{shown}: line {e.lineno}: not valid JSON ({e.msg} at column {e.colno})",
            hint="a .json file must hold a list of objects, or one object per line",
        ) from None
    if isinstance(value, dict):
        return [value], [1]
    if not isinstance(value, list):
        raise DataError(f"{shown}: expected a list of objects, got {_json_kind(value)}", hint="write [{...}, {...}]")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise DataError(
                f"{shown}: item {i + 1} of the list is {_json_kind(item)}, not an object",
                hint="every element of the list must be a JSON object",
            )
    return value, None


def _json_kind(value: Any) -> str:
    """What a JSON value is, in JSON's words: 'a list', 'a string', not Python's 'list', 'str'."""
    if isinstance(value, bool):
        return "true or false"
    kinds = {list: "a list", str: "a string", int: "a number", float: "a number", dict: "an object"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _parse_csv(text: str, shown: str, delimiter: str) -> tuple[list[dict[str, Any]], list[int]]:
    # The default limit (128 KiB per field) is too small for long documents; 2**31-1 fits a C long everywhere.
    csv.field_size_limit(2**31 - 1)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    header: list[str] | None = None
    start = 1
    try:
        for record in reader:
            if header is None:
                header = [h.strip() for h in record]
                if len(set(header)) != len(header):
                    raise DataError(f"{shown}: line 1: the header repeats a column name ({', '.join(header)})")
            elif record:  # csv yields [] for blank lines
                if len(record) != len(header):
                    raise DataError(
                        f"{shown}: line {start}: {len(record)} fields, but the header has {len(header)}",
                        hint="quote fields that contain the delimiter or line breaks",
                    )
                rows.append(dict(zip(header, record)))
                lines.append(start)
            start = reader.line_num + 1
    except csv.Error as e:
        raise DataError(f"{shown}: line {start}: not valid CSV ({e})", hint="check the quoting on that line") from None
    return rows, lines


def _read_parquet(path: Path, shown: str) -> list[dict[str, Any]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{shown}: not a readable Parquet file ({e})", hint="check that the file was written completely") from None
    return table.to_pylist()
