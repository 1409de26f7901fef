"""From a `[data]` section to the train and eval datasets a TRL trainer takes: load, detect, convert, split.

    prepared = prepare_datasets(cfg.data, "dpo", seed=cfg.train.seed, tokenizer=tokenizer)
    prepared.train, prepared.eval      # datasets.Dataset in TRL's format (prepared.trl_format)
    prepared.report.summary()          # "dpo.jsonl: 2000 rows read, 1990 kept; dropped 10 (...)"

With the model's tokenizer, every row is also fitted to its chat template (template_step.py: system
turns folded where the template refuses or drops them, counted in the report; a row it refuses
stops the run, named), and SFT rows are tokenized with the trained tokens marked (`input_ids`,
`assistant_masks`). Without one (tests of the shapes alone), rows stay as converted.

A folder's files must all hold one shape of rows. GRPO (and RLOO) rows must have the columns the rewards read
(`rewards=cfg.technique_rewards`: math_answer and exact_match compare with an answer column), checked
here rather than at the first scored batch, after the model has loaded.

What each technique gets (prepared.trl_format, and the columns of its rows):

    sft     text                 {"text"}
            messages             {"messages": turns}
            prompt_completion    {"prompt", "completion"}               strings, or turns
    reward  preference           {"prompt", "chosen", "rejected"}       strings, or turns
            preference_implicit  {"chosen", "rejected"}                 whole conversations (or texts)
    dpo     preference           {"prompt", "chosen", "rejected"}       implicit pairs have their prompt extracted
    kto     unpaired             {"prompt", "completion", "label"}      label a boolean; pairs become two rows
    grpo    prompt_only          {"prompt", ["answer"], ...}            the source's other columns kept as they are

Row order: `data.max_rows` keeps the first N rows of the split (after any slice such as
"train[:5000]"), in file order, so a quick try reads only the head of the file. The eval rows held
out by `data.eval_fraction` are then drawn with the run's seed: same seed, same split.

Imports datasets, never torch or textual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa

from smoltrain.config.schema import REWARDS_SECTIONS, DataSection, RewardFunction
from smoltrain.config.techniques import facts
from smoltrain.engine.data.convert import (
    Converter,
    RowInvalid,
    RowRejected,
    convert_rows,
    sft_converter,
)
from smoltrain.engine.data.convert_preference import preference_converter, unpair, unpaired_converter
from smoltrain.engine.data.convert_prompts import prompt_converter
from smoltrain.engine.data.detect import Detected, detect
from smoltrain.engine.data.load import LoadedData, is_local, is_split_spec, load_split
from smoltrain.engine.data.template_step import TemplateStep
from smoltrain.engine.techniques.rewards import columns_read
from smoltrain.errors import DataError

# Which module converts rows to each TRL format.
_CONVERTERS: dict[str, Callable[[Detected], Converter]] = {
    "text": sft_converter,
    "messages": sft_converter,
    "prompt_completion": sft_converter,
    "preference": preference_converter,
    "preference_implicit": preference_converter,
    "prompt_only": prompt_converter,
    "unpaired": unpaired_converter,
}


@dataclass
class DataReport:
    """What happened to the rows of one split, for the run log and the TUI."""

    source: str
    rows_read: int
    rows_kept: int
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> rows, most frequent first
    first_dropped_at: dict[str, str] = field(default_factory=dict)  # reason -> "line 17"
    fixed: dict[str, int] = field(default_factory=dict)  # what was changed to fit the chat template -> rows
    columns: list[str] = field(default_factory=list)  # the source's columns, as found (before data.columns renames)
    unpaired: int = 0  # KTO given pairs: how many were split into a desirable and an undesirable row

    @property
    def unpaired_note(self) -> str:
        return f"{self.unpaired} pairs unpaired for KTO (chosen: desirable, rejected: undesirable)" if self.unpaired else ""

    def summary(self) -> str:
        """One line: 'sft.jsonl: 2000 rows read, 1990 kept; dropped 10 (empty assistant content: 10, first at line 17)'."""
        text = f"{self.source}: {self.rows_read} rows read, {self.rows_kept} kept"
        if self.dropped:
            reasons = "; ".join(
                f"{reason}: {count}" + (f", first at {self.first_dropped_at[reason]}" if reason in self.first_dropped_at else "")
                for reason, count in self.dropped.items()
            )
            text += f"; dropped {sum(self.dropped.values())} ({reasons})"
        for fix, count in self.fixed.items():
            text += f"; {fix}: {count} rows"
        if self.unpaired:
            text += f"; {self.unpaired_note}"
        return text


@dataclass
class PreparedData:
    train: datasets.Dataset
    eval: datasets.Dataset | None
    # The shape found in the source: text, messages, sharegpt, prompt_completion, instruction, preference,
    # preference_implicit, hh_rlhf or prompt_only (detect.SHAPES).
    format: str
    # What train/eval hold: "text" | "messages" | "prompt_completion" (sft), "preference" | "preference_implicit"
    # (reward; dpo always gets "preference"), "unpaired" (kto), "prompt_only" (grpo). See the table above.
    trl_format: str
    report: DataReport  # the training source (all its rows, before eval_fraction is held out)
    eval_report: DataReport | None = None  # set when data.eval_split names a separate split
    # With a tokenizer: SFT text in the "chat template" or as "raw text", and where the mask comes from.
    text_format: str | None = None
    mask_source: str | None = None


def prepare_datasets(
    data: DataSection,
    technique: str,
    *,
    seed: int,
    tokenizer: Any = None,
    loss_on: str = "completion",
    model: str = "",
    rewards: Sequence[RewardFunction] = (),
) -> PreparedData:
    """Load, check and convert `data` for `technique`, fitted to `tokenizer`'s chat template when given
    (SFT: tokenized, `loss_on` marking the trained tokens); hold out eval rows. GRPO, RLOO: the rows must have
    the columns `rewards` (RunConfig.technique_rewards) read. Raises DataError on bad data."""
    assert data.path is not None, "data.curated is read from the curate stage's folder (engine/run.py)"
    loaded = load_split(data.path, data.config, data.split, data.max_rows)
    detected = _detect(loaded, data, technique, data.format)
    step = None
    if tokenizer is not None:
        step = TemplateStep(tokenizer, detected, technique=technique, loss_on=loss_on, text=data.template, model=model)
    train, report = _convert(loaded, detected, step)
    if facts(technique).prompts_only:
        _check_reward_columns(train, rewards, loaded.source, f"{REWARDS_SECTIONS.get(technique, 'grpo')}.rewards")

    eval_ds: datasets.Dataset | None = None
    eval_report: DataReport | None = None
    if data.eval_split is not None:
        eval_loaded = _load_eval(data)
        eval_detected = _detect(eval_loaded, data, technique, data.format)
        # One collator and chat template serve both splits, so they must land in the same TRL format.
        if (eval_detected.trl_format, eval_detected.conversational) != (detected.trl_format, detected.conversational):
            raise DataError(
                f"{eval_loaded.source}: the eval rows are {_kind(eval_detected)} but the training rows "
                f"({loaded.source}) are {_kind(detected)}",
                hint="use eval data of the same shape as the training data, or drop data.eval_split",
            )
        eval_ds, eval_report = _convert(eval_loaded, eval_detected, step)
        if set(eval_ds.column_names) != set(train.column_names):
            # GRPO passes the other columns to the reward functions: eval rows need the same ones.
            raise DataError(
                f"{eval_loaded.source}: the eval rows have columns {', '.join(eval_ds.column_names)} but the training "
                f"rows ({loaded.source}) have {', '.join(train.column_names)}",
                hint="give both splits the same columns, or drop data.eval_split",
            )
    elif data.eval_fraction > 0:
        train, eval_ds = _hold_out(train, data.eval_fraction, seed, loaded.source)

    return PreparedData(
        train=train,
        eval=eval_ds,
        format=detected.shape,
        trl_format=step.trl_format if step else detected.trl_format,
        report=report,
        eval_report=eval_report,
        text_format=step.text_format if step and technique == "sft" else None,
        mask_source=step.template.mask_source if step and step.template and technique == "sft" else None,
    )


def _check_reward_columns(train: datasets.Dataset, rewards: Sequence[RewardFunction], source: str, where: str) -> None:
    """A reward that compares with the right answer needs the column holding it. Missing, the run would
    fail at its first scored batch, after the model loaded; here it fails in seconds. `where`: the rewards' table."""
    missing = [(key, name, column) for key, name, column in columns_read(rewards, where) if column not in train.column_names]
    if not missing:
        return
    key, name, column = missing[0]
    others = f" (and {len(missing) - 1} more reward(s) reading missing columns)" if len(missing) > 1 else ""
    raise DataError(
        f"{source}: reward {name!r} ({key}) reads the column {column!r}, which the prompt rows do not have "
        f"(their columns: {', '.join(train.column_names)}){others}",
        hint=f"add the column {column!r} with each prompt's right answer, set {key}.answer_column to the column that "
        "holds it, or choose a reward that reads no column (format, length, json, reward_model)",
    )


def _load_eval(data: DataSection) -> LoadedData:
    """data.eval_split: a split of the same hub dataset, a slice of the same local file ("train[95%:]"),
    or, next to a local training file, the path of another local file."""
    split = data.eval_split
    assert split is not None and data.path is not None
    # max_rows caps eval too: a quick first try should not evaluate on a 10,000-row split.
    if is_local(data.path) and not is_split_spec(split):
        return load_split(split, None, "train", data.max_rows)
    return load_split(data.path, data.config, split, data.max_rows)


def _detect(loaded: LoadedData, data: DataSection, technique: str, fmt: str) -> Detected:
    _check_one_shape(loaded, data, technique, fmt)
    first = loaded.rows[0] if len(loaded.rows) else None
    return detect(loaded.columns, first, technique=technique, fmt=fmt, mapping=data.columns, source=loaded.source)


def _check_one_shape(loaded: LoadedData, data: DataSection, technique: str, fmt: str) -> None:
    """A folder's files must all hold rows of one shape. Read as one, the rows of the others would be
    dropped as "missing messages"; half of them dropped still passes the too-many-drops check."""
    files: dict[str, list[str]] = {}  # shape -> the files that hold it
    for label, rows, columns in loaded.files():
        found = detect(columns, rows[0], technique=technique, fmt=fmt, mapping=data.columns,
                       source=str(Path(loaded.source) / label))  # fmt: skip
        turns = found.conversational and found.shape not in ("messages", "sharegpt", "instruction")
        files.setdefault(found.shape + (" of chat turns" if turns else ""), []).append(label)
    if len(files) > 1:
        shapes = "; ".join(f"{_listed(labels)}: {shape}" for shape, labels in files.items())
        raise DataError(
            f"{loaded.source}: the folder's files hold rows of {len(files)} different shapes ({shapes})",
            hint="one dataset is read as one shape: put each shape in its own folder, or point data.path at one file "
            "(a pipeline's [[stages]] can train on each in turn)",
        )


def _listed(labels: list[str], most: int = 5) -> str:
    return ", ".join(labels[:most]) + (f" and {len(labels) - most} more" if len(labels) > most else "")


def _convert(loaded: LoadedData, detected: Detected, step: TemplateStep | None) -> tuple[datasets.Dataset, DataReport]:
    rows = loaded.rows
    if isinstance(rows, datasets.Dataset):
        # Arrow -> Python for the needed columns only, in one pass: much faster than row by row.
        rows = rows.select_columns(sorted({*detected.fields.values(), *detected.keep})).to_list()
    convert = _CONVERTERS[detected.trl_format](detected)
    if step is not None:
        step.fixes.clear()
        convert = _then(convert, step)
    try:
        converted = convert_rows(rows, convert)
    except RowRejected as rejected:
        raise DataError(
            f"{loaded.source}: {loaded.where(rejected.index)}: the model's chat template rejects this row: {rejected}",
            hint="fix the row (for example the order of its roles), or remove it",
        ) from None
    except RowInvalid as invalid:
        raise DataError(f"{loaded.source}: {loaded.where(invalid.index)}: {invalid}", hint=invalid.hint) from None
    read, kept = len(rows), len(converted.rows)
    dropped = dict(converted.dropped.most_common())
    first_at = {reason: loaded.where(i) for reason, i in converted.first_at.items()}
    if kept == 0 or read - kept > read / 2:
        # Most rows failing means the wrong shape or column mapping, not a few bad rows: stop here.
        reason, index = min(converted.first_at.items(), key=lambda item: item[1])
        raise DataError(
            f"{loaded.source}: {loaded.where(index)}: {reason} ({read - kept} of {read} rows have problems, "
            f"read as {detected.shape}: {_describe(dropped)})",
            hint="fix or remove those rows, or check data.format and data.columns",
        )
    report = DataReport(loaded.source, read, kept, dropped, first_at, dict(step.fixes.most_common()) if step else {},
                        columns=list(loaded.columns))
    out = converted.rows
    if detected.trl_format == "unpaired" and "chosen" in detected.fields:
        out, report.unpaired = unpair(out), kept
    return _to_dataset(out, loaded.source), report


def _then(convert: Converter, step: TemplateStep) -> Converter:
    return lambda row: step(convert(row))


def _to_dataset(rows: list[dict[str, Any]], source: str) -> datasets.Dataset:
    try:
        return datasets.Dataset.from_list(rows)
    except pa.ArrowException as e:
        # Columns passed on as they are (GRPO) may mix types between rows, which Arrow cannot store.
        column = next((c for c in rows[0] if not _one_type([r.get(c) for r in rows])), None)
        where = f"column {column!r} holds" if column else "a column holds"
        raise DataError(
            f"{source}: {where} values of different types in different rows ({e})",
            hint="give every row the same type in that column (for example all strings), or remove the column",
        ) from None


def _one_type(values: list[Any]) -> bool:
    try:
        pa.array(values)
    except pa.ArrowException:
        return False
    return True


def _kind(detected: Detected) -> str:
    turns = " of chat turns" if detected.conversational else ""
    return f"{detected.shape} (trained as {detected.trl_format}{turns})"


def _describe(dropped: dict[str, int]) -> str:
    return ", ".join(f"{reason}: {count}" for reason, count in dropped.items())


def _hold_out(train: datasets.Dataset, fraction: float, seed: int, source: str) -> tuple[datasets.Dataset, datasets.Dataset]:
    n = len(train)
    if n < 2:
        raise DataError(
            f"{source}: only {n} usable row; holding out data.eval_fraction = {fraction} for evaluation needs at least 2",
            hint="add rows, or set data.eval_fraction = 0 to train without evaluation",
        )
    # At least one eval row (else eval_fraction > 0 silently means no eval), at least one train row.
    n_eval = min(n - 1, max(1, round(n * fraction)))
    split = train.train_test_split(test_size=n_eval, seed=seed, shuffle=True)
    return split["train"], split["test"]
