"""What a name in a preset means: a Hugging Face hub id ("org/name") or a local path.

The one rule, used wherever a model or dataset name is read: the data loader and the model loader (what
"not found" means), the wizard (a missing local file is refused at once, a hub id is looked up), a past
run's adapter base (smoltrain/pastrun.py). Stdlib only: the wizard asks on its UI thread, and importing
the data loader would load `datasets` (half a second) there.
"""

from __future__ import annotations

import os
import re

DATA_FILE_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")  # the files the data loader reads
# Suffixes that mean "the user meant a file", even ones we cannot read: a missing `data.txt`
# should say "file not found", not "hub dataset not found".
_FILE_LIKE_SUFFIXES = DATA_FILE_SUFFIXES + (".txt", ".gz", ".zip", ".arrow", ".xlsx", ".ndjson")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def looks_like_path(path: str) -> bool:
    """True if `path` cannot be a hub id ("org/name") and so must have been meant as a file."""
    if path.startswith(("./", "../", "~", "/", ".\\")) or os.path.isabs(path) or "\\" in path:
        return True
    if path.lower().endswith(_FILE_LIKE_SUFFIXES) or path.count("/") > 1:
        return True
    return not HUB_ID.match(path)
