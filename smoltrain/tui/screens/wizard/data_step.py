"""The dataset step: curated public datasets that fit the technique, a local file, or a hub id; and a
preview of the first rows as the model will see them (chat template applied; SFT's trained tokens
highlighted, a preference pair's chosen and rejected answers, a KTO answer coloured by its label, a
GRPO prompt with the columns its rewards read), the detected format, the dataset's statistics, how many rows fit max_length, and a
token-length histogram with a suggested max_length.

Leaving the step refuses data known to be unusable: a local-looking path that does not exist (at
once), data the preview rejected (a SmoltrainError, except a hub dataset that cannot be checked
offline), and data whose preview is still being read (the user stays and presses Next again: the
wizard never moves on by itself while the user may be typing).

The preview loads the tokenizer and the data in a worker thread (tui.preview imports transformers
and datasets only when called), so the UI stays responsive and this module never imports torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from smoltrain.errors import SmoltrainError
from smoltrain.tui.catalog import CURATED_DATASETS, DatasetChoice, technique
from smoltrain.tui.preview import Preview, missing_local_file
from smoltrain.tui.screens.wizard.base import Step


class DataStep(Step):
    TITLE = "Dataset"
    EXPLAIN = (
        "What the model learns from. Quality beats quantity: a thousand good, varied examples beat a million "
        "mixed ones. Pick a dataset in a shape this technique reads, a local .jsonl/.json/.csv/.parquet file, or "
        "any hub dataset id. The preview shows the first rows as the model sees them; the legend under them says "
        "what the colours mean for this technique."
    )
    BINDINGS = [Binding("ctrl+l", "use_suggested", "Use suggested max_length")]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.preview: Preview | None = None
        self._choices: list[DatasetChoice] = []
        self._reading: dict[str, Any] | None = None  # the draft being previewed, until its preview is shown
        # What the preview found wrong with the data, and the [data] section it found it in.
        self._problem: tuple[SmoltrainError, dict[str, Any]] | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_explanation()
        yield Static("", id="data-needs")
        yield OptionList(id="data-list")
        with Horizontal(id="data-row"):
            yield Input(placeholder="a local file or a hub dataset id, then Enter", id="data-input")
            yield Button("Preview", id="data-preview")
        yield Static("", id="preview-summary")
        yield Static("", id="preview-stats")
        yield Static("", id="preview-rows")
        yield Static("", id="preview-histogram")

    def enter(self) -> None:
        tech = technique(self.draft.technique)
        self.query_one("#data-needs", Static).update(Text.assemble((f"{tech.title} needs: ", "bold"), tech.data))
        self._choices = list(CURATED_DATASETS[tech.name])
        listing = self.query_one("#data-list", OptionList)
        listing.clear_options()
        listing.add_options([Option(f"{c.path if not Path(c.path).is_absolute() else Path(c.path).name}  {c.note}", id=str(i))
                             for i, c in enumerate(self._choices)])  # fmt: skip
        current = self.draft.get("data.path", "")
        self.query_one("#data-input", Input).value = current
        listing.highlighted = next((i for i, c in enumerate(self._choices) if c.path == current), None)
        listing.focus()
        if current:
            self.run_preview()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        choice = self._choices[int(event.option.id or 0)]
        self.draft.raw["data"] = {**choice.data_section(), **{k: v for k, v in self.draft.raw.get("data", {}).items()
                                                               if k in ("max_rows", "eval_fraction")}}  # fmt: skip
        self.query_one("#data-input", Input).value = choice.path
        self.run_preview()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._take_typed_path()
        self.run_preview()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "data-preview":
            self._take_typed_path()
            self.run_preview()

    def _take_typed_path(self) -> bool:
        """The typed path into the draft; True when it changed the draft's dataset."""
        typed = self.query_one("#data-input", Input).value.strip()
        if not typed:
            return False
        local = Path(typed).expanduser()
        path = str(local.resolve()) if local.exists() else typed  # as a run started elsewhere must find it
        if path == self.draft.get("data.path"):
            return False
        self.draft.raw["data"] = {"path": path}
        return True

    def run_preview(self) -> None:
        if not self.draft.get("model.name_or_path") or not self.draft.get("data.path"):
            return
        for part in ("#preview-rows", "#preview-stats", "#preview-histogram"):
            self.query_one(part, Static).update("")
        self.preview, self._problem = None, None
        if missing := missing_local_file(self.draft.get("data.path")):
            self._reading = None
            self.query_one("#preview-summary", Static).update(Text(f"error: {missing}", style="bold red"))
            return
        self.query_one("#preview-summary", Static).update("[dim]reading the data and the tokenizer…[/]")
        self._reading = {k: dict(v) if isinstance(v, dict) else v for k, v in self.draft.raw.items()}
        self._preview_worker(self._reading)

    @work(thread=True, exclusive=True, group="preview")
    def _preview_worker(self, raw: dict[str, Any]) -> None:
        from smoltrain.tui.preview import build_preview

        try:
            preview: Preview | SmoltrainError | str = build_preview(raw)
        except SmoltrainError as exc:
            preview = exc
        except Exception as exc:  # noqa: BLE001 - a preview failure must be shown, not crash the wizard
            preview = f"error: could not preview this dataset: {type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._show_preview, raw, preview)

    def _show_preview(self, raw: dict[str, Any], preview: Preview | SmoltrainError | str) -> None:
        if raw is not self._reading:
            return  # an earlier preview, overtaken by a newer one (a thread worker cannot be cancelled)
        self._reading = None
        self.screen.query_one("#wizard-problem", Static).update("")  # "still reading the data" is over
        summary = self.query_one("#preview-summary", Static)
        if isinstance(preview, SmoltrainError) and preview.needs_network:
            summary.update(Text(f"not checked offline: {preview.message}\nNext goes on: the run reads it when the "
                                "hub can be reached.", style="yellow"))  # fmt: skip
            return
        if isinstance(preview, SmoltrainError):
            self._problem = (preview, dict(raw["data"]))
            summary.update(Text(preview.render(), style="bold red"))
            return
        if isinstance(preview, str):  # a bug, not the user's data: shown; the review's check has the last word
            summary.update(Text(preview, style="bold red"))
            return
        self.preview = preview
        suggested = preview.suggested_max_length()
        summary.update(Text.assemble(
            ("format: ", "bold"), f"{preview.format} (trained as {preview.trl_format})\n", preview.summary + "\n",
            (f"{preview.fitting} of {len(preview.lengths)} rows measured fit max_length {preview.max_length}; ", ""),
            ("suggested max_length: ", "bold"), f"{suggested} (ctrl+l to use it)",
        ))  # fmt: skip
        self.query_one("#preview-stats", Static).update(Text("\n".join(preview.stats()), style="cyan"))
        self.query_one("#preview-rows", Static).update(_rows_text(preview))
        self.query_one("#preview-histogram", Static).update("tokens per row:\n" + "\n".join(preview.histogram()))

    def action_use_suggested(self) -> None:
        if self.preview is None:
            self.notify("No preview yet.", severity="warning")
            return
        value = self.preview.suggested_max_length()
        self.draft.set("train.max_length", value)
        self.notify(f"max_length set to {value}")

    def leave(self) -> str | None:
        if self._take_typed_path():
            self.run_preview()  # typed without Enter: the user sees what it holds before going on
        path = self.draft.get("data.path")
        if not path:
            return "pick a dataset, or type a file path or a hub id"
        if missing := missing_local_file(path):
            return escape(missing)
        if self._reading is not None:
            return f"still reading the data ({escape(_shown_path(path))}): press Next again when the preview is shown"
        if self._problem is not None and self._problem[1] == self.draft.raw.get("data"):
            return escape(_problem_text(_shown_path(path), self._problem[0]))
        return None


def _rows_text(preview: Preview) -> Text:
    """The first rows as the technique's trainer sees them, with a legend that says what the colours mean."""
    rows = Text()
    for i, pieces in enumerate(preview.rows):
        row = Text.assemble((f"row {i + 1}: ", "bold"))
        if preview.trl_format.startswith("preference"):
            rejected = preview.rejected_rows[i] if i < len(preview.rejected_rows) else []
            row.append(_joined(pieces, trained=False), style="dim")
            row.append("\n  chosen: ", style="bold green")
            row.append(_joined(pieces, trained=True), style="green")
            row.append("\n  rejected: ", style="bold red")
            row.append(_joined(rejected, trained=True), style="red")
        elif preview.trl_format == "unpaired":
            good = bool(preview.answers[i].get("label")) if i < len(preview.answers) else False
            row.append(_joined(pieces, trained=False), style="dim")
            row.append("\n  desirable: " if good else "\n  undesirable: ", style="bold green" if good else "bold red")
            row.append(_joined(pieces, trained=True), style="green" if good else "red")
        else:
            for piece in pieces:
                row.append(piece.text, style="reverse green" if piece.trained else "dim")
            row.rstrip()
        # GRPO's reward columns; KTO's label is already told by the answer's colour.
        shown = preview.answers[i] if i < len(preview.answers) and preview.trl_format != "unpaired" else {}
        for column, value in shown.items():
            row.append(f"\n  {column}: ", style="bold cyan")
            row.append(str(value), style="cyan")
        rows.append_text(row)
        rows.append("\n")
    rows.append_text(_LEGENDS.get(preview.technique, _LEGENDS["sft"]))
    return rows


def _joined(pieces: list[Any], trained: bool) -> str:
    """The text of a row's trained (or untrained) pieces, without the newline the template ends it with."""
    return "".join(p.text for p in pieces if p.trained == trained).rstrip("\n")


_LEGENDS = {
    "sft": Text("highlighted: trained on", style="reverse green"),
    "dpo": Text.assemble(("green", "green"), ": the chosen answer, ", ("red", "red"),
                         ": the rejected one; DPO raises the chosen answer's likelihood over the rejected one's"),
    "reward": Text.assemble(("green", "green"), ": the chosen answer, ", ("red", "red"),
                            ": the rejected one; the reward model learns to score chosen above rejected"),
    "kto": Text.assemble(("green", "green"), ": a desirable answer, ", ("red", "red"),
                         ": an undesirable one (each row has one); KTO raises desirable answers above the reference "
                         "model's likelihood and pushes undesirable ones below it"),
    "grpo": Text.assemble("the prompt as the model sees it; GRPO samples completions from it during training and "
                          "grpo.rewards score them; ", ("cyan", "cyan"), ": the columns the rewards read"),
    "rloo": Text.assemble("the prompt as the model sees it; RLOO samples completions from it during training and "
                          "rloo.rewards score them; ", ("cyan", "cyan"), ": the columns the rewards read"),
    "curate": Text.assemble("the prompt as the model sees it; curate samples curate.samples answers to it and its "
                            "rewards score them; ", ("cyan", "cyan"), ": the columns the rewards read"),
}  # fmt: skip


def _shown_path(path: str) -> str:
    """A path under the working folder, relative to it: shorter, and as the user typed it."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _problem_text(path: str, error: SmoltrainError) -> str:
    """The preview's error in the three lines under the step: the file and what to do (the preview, just
    above, says in full what is wrong)."""
    if error.hint:
        return f"{path} can't be used (the error above): {error.hint}"
    return error.message.replace(str(Path.cwd()) + os.sep, "")
