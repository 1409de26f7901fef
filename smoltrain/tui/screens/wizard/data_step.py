"""The dataset step: curated public datasets that fit the technique, a local file, or a hub id; and a
preview of the first rows as the model will see them (chat template applied, trained tokens
highlighted), the detected format, how many rows fit max_length, and a token-length histogram with
a suggested max_length.

The preview loads the tokenizer and the data in a worker thread (tui.preview imports transformers
and datasets only when called), so the UI stays responsive and this module never imports torch.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from smoltrain.errors import SmoltrainError
from smoltrain.tui.catalog import CURATED_DATASETS, DatasetChoice, technique
from smoltrain.tui.preview import Preview
from smoltrain.tui.screens.wizard.base import Step


class DataStep(Step):
    TITLE = "Dataset"
    EXPLAIN = (
        "What the model learns from. Quality beats quantity: a thousand good, varied examples beat a million "
        "mixed ones. Pick a dataset in a shape this technique reads, a local .jsonl/.json/.csv/.parquet file, or "
        "any hub dataset id. The preview shows the first rows as the model sees them; highlighted tokens are "
        "the ones it is trained on."
    )
    BINDINGS = [Binding("ctrl+l", "use_suggested", "Use suggested max_length")]

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.preview: Preview | None = None
        self._choices: list[DatasetChoice] = []

    def compose(self) -> ComposeResult:
        yield from self.compose_explanation()
        yield Static("", id="data-needs")
        yield OptionList(id="data-list")
        with Horizontal(id="data-row"):
            yield Input(placeholder="a local file or a hub dataset id, then Enter", id="data-input")
            yield Button("Preview", id="data-preview")
        yield Static("", id="preview-summary")
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

    def _take_typed_path(self) -> None:
        typed = self.query_one("#data-input", Input).value.strip()
        if typed and typed != self.draft.get("data.path"):
            local = Path(typed).expanduser()
            self.draft.raw["data"] = {"path": str(local.resolve()) if local.exists() else typed}

    def run_preview(self) -> None:
        if not self.draft.get("model.name_or_path") or not self.draft.get("data.path"):
            return
        self.query_one("#preview-summary", Static).update("[dim]reading the data and the tokenizer…[/]")
        self.query_one("#preview-rows", Static).update("")
        self.query_one("#preview-histogram", Static).update("")
        self._preview_worker({k: dict(v) if isinstance(v, dict) else v for k, v in self.draft.raw.items()})

    @work(thread=True, exclusive=True, group="preview")
    def _preview_worker(self, raw: dict[str, object]) -> None:
        from smoltrain.tui.preview import build_preview

        try:
            preview: Preview | str = build_preview(raw)  # type: ignore[arg-type]
        except SmoltrainError as exc:
            preview = exc.render()
        except Exception as exc:  # noqa: BLE001 - a preview failure must be shown, not crash the wizard
            preview = f"error: could not preview this dataset: {type(exc).__name__}: {exc}"
        self.app.call_from_thread(self._show_preview, preview)

    def _show_preview(self, preview: Preview | str) -> None:
        summary = self.query_one("#preview-summary", Static)
        if isinstance(preview, str):
            self.preview = None
            summary.update(Text(preview, style="bold red"))
            return
        self.preview = preview
        suggested = preview.suggested_max_length()
        summary.update(Text.assemble(
            ("format: ", "bold"), f"{preview.format} (trained as {preview.trl_format})\n", preview.summary + "\n",
            (f"{preview.fitting} of {len(preview.lengths)} rows measured fit max_length {preview.max_length}; ", ""),
            ("suggested max_length: ", "bold"), f"{suggested} (ctrl+l to use it)",
        ))  # fmt: skip
        rows = Text()
        for i, pieces in enumerate(preview.rows):
            rows.append(f"row {i + 1}: ", style="bold")
            for piece in pieces:
                rows.append(piece.text, style="reverse green" if piece.trained else "dim")
            rows.append("\n")
        rows.append("highlighted: trained on", style="reverse green")
        self.query_one("#preview-rows", Static).update(rows)
        self.query_one("#preview-histogram", Static).update("tokens per row:\n" + "\n".join(preview.histogram()))

    def action_use_suggested(self) -> None:
        if self.preview is None:
            self.notify("No preview yet.", severity="warning")
            return
        value = self.preview.suggested_max_length()
        self.draft.set("train.max_length", value)
        self.notify(f"max_length set to {value}")

    def leave(self) -> str | None:
        self._take_typed_path()
        return None if self.draft.get("data.path") else "pick a dataset, or type a file path or a hub id"
