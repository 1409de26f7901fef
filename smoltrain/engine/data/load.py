"""Load the rows of one split: a local file, a folder of files, or a hub dataset.

What `data.path` means: whatever exists on disk is local (a file, a folder of files named by
split like the hub's, or a `save_to_disk` folder); a missing path that looks like one is "file not
found"; anything else is a hub id for `datasets.load_dataset`. Without a network, hub loading fails
(or uses the cached copy) in seconds rather than after half a minute of retries.

Files are parsed by files.py so errors name the file and line. Whatever the source, the result is a
`LoadedData`: the rows plus where each came from, so later stages can say "line 17".

Imports datasets, huggingface_hub and the standard library; never torch or textual.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from smoltrain.engine.data.files import SUFFIXES, read_file
from smoltrain.errors import DataError
from smoltrain.names import looks_like_path

_HUB_ID_CHARS = re.compile(r"^[\w./~\\:-]+$")  # what paths and ids are made of; spaces etc. are neither
_SPLIT = re.compile(r"^(?P<name>[\w-]+)(?:\[(?P<start>-?\d+%?)?:(?P<stop>-?\d+%?)?\])?$")
# The hub's split words (datasets.data_files.SPLIT_KEYWORDS), for folders of split files.
_SPLIT_WORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_NON_WORD = re.compile(r"[-._ 0-9]+")
_OFFLINE_HINT = "check the id, your network, or download it first; local files work offline"
_HUB_PROBE_TIMEOUT_S = 3.0


class Segment(NamedTuple):
    """Rows start.. of the loaded data came from one file; `numbers[i]` is row i's line (or item/row) there."""

    start: int
    label: str  # the file, relative to data.path when that is a folder; "" for a single file
    unit: str  # "line", "item" (of a JSON list) or "row"
    numbers: Sequence[int]


@dataclass
class LoadedData:
    """Rows of one split, in file order. `rows` holds dicts (local files) or a `datasets.Dataset` (hub)."""

    source: str
    rows: Sequence[Mapping[str, Any]]
    columns: list[str]
    segments: list[Segment] = field(default_factory=list)

    def where(self, index: int) -> str:
        """Where row `index` came from, as a user can find it: 'line 17', 'part-2.csv line 4', 'row 9'."""
        k = bisect.bisect_right([s.start for s in self.segments], index) - 1
        if k < 0:
            return f"row {index + 1}"
        seg = self.segments[k]
        loc = f"{seg.unit} {seg.numbers[index - seg.start]}"
        return f"{seg.label} {loc}" if seg.label else loc

    def files(self) -> list[tuple[str, Sequence[Mapping[str, Any]], list[str]]]:
        """(file, its rows, its columns) for each file of a folder that rows come from; [] for one file or a hub split."""
        if len(self.segments) < 2 or not isinstance(self.rows, list):
            return []
        ends = [s.start for s in self.segments[1:]] + [len(self.rows)]
        return [(seg.label, self.rows[seg.start : end], _columns(self.rows[seg.start : end]))
                for seg, end in zip(self.segments, ends)]  # fmt: skip


def load_split(path: str, config: str | None, split: str, max_rows: int | None) -> LoadedData:
    """Load one split of `path`, sliced as `split` says ("train", "train[:100]", "train[10%:]"),
    then keep the first `max_rows` rows (file order, no shuffle: a first try sees the file's head)."""
    if is_local(path):
        m = _SPLIT.match(split.replace(" ", ""))
        if not m:
            raise DataError(f"{path}: cannot read split {split!r}", hint="write a split like 'train', 'train[:1000]' or 'train[90%:]'")
        data = _load_local(Path(os.path.expanduser(path)), path, m["name"])
        _slice(data, _bound(m["start"], len(data.rows)), _bound(m["stop"], len(data.rows)))
    elif looks_like_path(path):
        what = "file not found" if _HUB_ID_CHARS.match(path) else "no such file, and not a hub id (org/name)"
        raise DataError(
            f"{path}: {what}",
            hint=f"check the path; relative paths start from the folder you run smoltrain in ({os.getcwd()})",
        )
    else:
        data = _load_hub(path, config, split)
    if max_rows is not None:
        _slice(data, 0, max_rows)
    if len(data.rows) == 0:
        raise DataError(f"{data.source}: no rows in split {split!r}", hint="check data.split and the slice in it")
    return data


def is_local(path: str) -> bool:
    """A local file or folder is whatever exists on disk; anything else is a hub id or a missing file."""
    return Path(os.path.expanduser(path)).exists()


def is_split_spec(text: str) -> bool:
    """True for a split name with an optional slice: "train", "test", "train[:100]", "train[90%:]"."""
    return _SPLIT.match(text.replace(" ", "")) is not None


# --- local files --------------------------------------------------------------------------------


def _load_local(path: Path, shown: str, split: str) -> LoadedData:
    if path.is_dir() and ((path / "dataset_dict.json").exists() or (path / "state.json").exists()):
        return _load_saved(path, shown, split)
    if path.is_dir():
        files = _split_files(path, shown, split)
        rows: list[dict[str, Any]] = []
        segments: list[Segment] = []
        for file in files:
            file_rows, unit, numbers = read_file(file, str(Path(shown) / file.relative_to(path)))
            segments.append(Segment(len(rows), str(file.relative_to(path)), unit, numbers))
            rows.extend(file_rows)
        return LoadedData(shown, rows, _columns(rows), segments)
    if split != "train":
        raise DataError(
            f"{shown}: split {split!r} does not apply to a single file",
            hint="a file has one split, 'train': slice it like 'train[:1000]' or 'train[90%:]'; "
            "data.eval_split may also name another local file",
        )
    file_rows, unit, numbers = read_file(path, shown)
    return LoadedData(shown, file_rows, _columns(file_rows), [Segment(0, "", unit, numbers)])


def _split_files(folder: Path, shown: str, split: str) -> list[Path]:
    """The folder's data files for `split`, by the hub's naming rule: a file or folder name holding a
    split word (train, validation/valid/dev/val, test/eval) belongs to that split; with no such
    names, every file is train. A downloaded hub dataset's folder thus reads as it would online."""
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIXES and not any(t.startswith(".") for t in p.relative_to(folder).parts)
    )
    if not files:
        raise DataError(f"{shown}: no {', '.join(SUFFIXES)} files in this folder", hint="point data.path at a data file")
    by_split: dict[str, list[Path]] = {}
    for file in files:
        words = {w.lower() for part in file.relative_to(folder).with_suffix("").parts for w in _NON_WORD.split(part)}
        name = next((name for name, keys in _SPLIT_WORDS.items() if words & set(keys)), None)
        if name is not None:
            by_split.setdefault(name, []).append(file)
    if not by_split:
        by_split = {"train": files}
    if split not in by_split:
        raise DataError(
            f"{shown}: no files for split {split!r} in this folder (splits found: {', '.join(sorted(by_split))})",
            hint="split names come from the file names, e.g. train.jsonl and test.jsonl",
        )
    return by_split[split]


def _load_saved(path: Path, shown: str, split: str) -> LoadedData:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    import datasets

    try:
        saved = datasets.load_from_disk(str(path))
    except (OSError, ValueError) as e:
        raise DataError(f"{shown}: cannot read this saved dataset ({e})", hint="save it again with save_to_disk") from None
    if isinstance(saved, datasets.DatasetDict):
        if split not in saved:
            raise DataError(f"{shown}: no split {split!r} (splits: {', '.join(saved)})", hint="set data.split to one of them")
        saved = saved[split]
    elif split != "train":
        raise DataError(f"{shown}: a saved Dataset has one split, 'train'; got {split!r}", hint="use data.split = 'train'")
    return LoadedData(shown, saved, list(saved.column_names), [Segment(0, "", "row", range(1, len(saved) + 1))])


def _slice(data: LoadedData, start: int | None, stop: int | None) -> None:
    """Cut `data` to rows[start:stop] (Python slice rules), keeping each row's file and line."""
    n = len(data.rows)
    lo, hi, _ = slice(start, stop).indices(n)
    hi = max(lo, hi)
    if (lo, hi) == (0, n):
        return
    segments: list[Segment] = []
    ends = [s.start for s in data.segments[1:]] + [n]
    for seg, end in zip(data.segments, ends):
        a, b = max(seg.start, lo), min(end, hi)
        if a < b:
            segments.append(Segment(a - lo, seg.label, seg.unit, seg.numbers[a - seg.start : b - seg.start]))
    rows = data.rows
    data.rows = rows[lo:hi] if isinstance(rows, list) else rows.select(range(lo, hi))  # type: ignore[attr-defined]
    data.segments = segments


def _bound(text: str | None, n: int) -> int | None:
    if text is None:
        return None
    if text.endswith("%"):
        return round(n * int(text[:-1]) / 100)
    return int(text)


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:  # JSON lines may differ in keys: the union, in order of first appearance
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


# --- hub ----------------------------------------------------------------------------------------


def _load_hub(path: str, config: str | None, split: str) -> LoadedData:
    import datasets
    from datasets.exceptions import DatasetNotFoundError

    source = f"{path} ({config}, {split})" if config else f"{path} ({split})"
    requested = _offline_requested()
    offline = requested or not _hub_reachable()
    try:
        with forced_offline() if offline else contextlib.nullcontext():
            ds = datasets.load_dataset(path, name=config, split=split)
    except (ConnectionError, FileNotFoundError) as e:
        if offline:
            why = "offline mode is on (HF_HUB_OFFLINE)" if requested else "the hub cannot be reached"
            raise DataError(f"{path}: hub dataset not in the local cache, and {why}", hint=_OFFLINE_HINT,
                            needs_network=True) from None  # fmt: skip
        if isinstance(e, DatasetNotFoundError):
            raise DataError(
                f"{path}: dataset not found on the Hugging Face hub",
                hint="check the id; for a gated or private dataset, accept its terms and run `hf auth login`",
            ) from None
        raise DataError(f"{path}: could not load hub dataset ({e})", hint=_OFFLINE_HINT) from None
    except (ValueError, RuntimeError, OSError) as e:  # unknown config or split, script datasets, bad files
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(
            f"{source}: could not load hub dataset ({first_line})",
            hint="check data.config and data.split against the dataset page on the hub",
        ) from None
    if not isinstance(ds, datasets.Dataset):
        raise DataError(f"{source}: expected one split, got {type(ds).__name__}", hint="set data.split, e.g. 'train'")
    return LoadedData(source, ds, list(ds.column_names), [Segment(0, "", "row", range(1, len(ds) + 1))])


def hub_unreachable(path: str) -> bool:
    """True when `path` is a hub id and the hub cannot be used now (offline mode, or no network)."""
    return not is_local(path) and (_offline_requested() or not _hub_reachable())


def hub_offline_context(path: str) -> contextlib.AbstractContextManager[None]:
    """For loading `path` from the hub: offline mode when the hub cannot be reached, so a cached copy
    is used at once and a missing one fails at once (the model loader shares this with the data)."""
    if is_local(path) or _offline_requested() or _hub_reachable():
        return contextlib.nullcontext()
    return forced_offline()


def hub_offline_now() -> bool:
    """The hub cannot be used now: offline mode asked for (even after the libraries were imported), or no network."""
    return _offline_requested() or not _hub_reachable()


def _offline_requested() -> bool:
    """Offline mode as the user set it, read now: the libraries read the environment only at import."""
    import datasets.config
    from huggingface_hub import constants

    env = any(os.environ.get(v, "").upper() in {"1", "ON", "YES", "TRUE"} for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return env or bool(constants.HF_HUB_OFFLINE) or bool(datasets.config.HF_HUB_OFFLINE)


def _hub_reachable() -> bool:
    """A quick TCP connect to the hub. Without it, a machine with no network waits ~25 s of retries."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct connect proves nothing; let the libraries try
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname or "huggingface.co", port), timeout=_HUB_PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def forced_offline() -> Iterator[None]:
    """Offline mode for one call: `load_dataset` then uses a cached copy at once, or fails at once."""
    import datasets.config
    from huggingface_hub import constants

    saved = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, constants.HF_HUB_OFFLINE = saved
