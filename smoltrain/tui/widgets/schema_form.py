"""A settings form generated from the config schema: one row per field, the control chosen by the
field's type (switch, select, number or text) and its help text taken from the field's description,
so the form, the preset docs and `--help` never disagree. Each field takes two rows: its name and a
compact control, then its help on one line (cut to the width, the whole text in its tooltip).

Each change is validated against its section's pydantic model at once and posted as
`SchemaForm.Changed(dotted_key, value)`; an invalid entry is marked and explained in place, and kept
in `errors` until it is fixed: `problem()` names it, and the wizard does not move on past it (the
preset would otherwise silently keep the value from before, or the schema's default). `set_values`
puts values from elsewhere (fit to GPU) into the controls in place, keeping focus and scroll.
Text fields are FieldInputs, whose editing keys act in the order typed (the reward picker uses them too).
Never imports torch.
"""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ValidationError
from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, Label, Select, Static, Switch

from smoltrain.config.schema import RunConfig


def section_model(section: str) -> type[BaseModel]:
    annotation = RunConfig.model_fields[section].annotation
    # `data: DataSection | None` -> DataSection
    return next(a for a in typing.get_args(annotation) or (annotation,) if isinstance(a, type) and issubclass(a, BaseModel))


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return (args[0] if len(args) == 1 else annotation), len(args) < len(typing.get_args(annotation))
    return annotation, False


class FieldInput(Input):
    """An Input whose own editing keys (ctrl+u, ctrl+w, end, select-all, ...) act in the order they were typed.

    Textual runs a widget's key bindings only once the key has bubbled up to the app, a hop per
    ancestor, while printable keys go straight in. In a form nested eight widgets deep, a burst such
    as ctrl+u then "0.001" had some of its characters inserted first and then wiped (issue 14, defect 3)."""

    async def _on_key(self, event: events.Key) -> None:
        bindings = self._bindings.key_to_bindings.get(event.key)
        if bindings and not event.is_printable:
            event.stop()
            event.prevent_default()
            await self.run_action(bindings[0].action)
            return
        await super()._on_key(event)


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)


class SchemaForm(Widget):
    """Rows for `fields` (dotted keys such as "train.learning_rate"), showing `values` or the defaults."""

    DEFAULT_CSS = """
    SchemaForm { height: auto; }
    SchemaForm .row { height: 1; }
    SchemaForm .name { width: 24; padding: 0 1 0 0; text-style: bold; }
    SchemaForm .control { width: 1fr; max-width: 30; }
    SchemaForm Switch { width: auto; height: 1; border: none; padding: 0; }  /* Switch has no compact style */
    SchemaForm Switch:focus { border: none; text-style: reverse; }
    SchemaForm .help { color: $text-muted; padding: 0 0 0 24; width: 1fr; height: 1;
                       text-wrap: nowrap; text-overflow: ellipsis; }
    SchemaForm .help.error { color: $error; height: auto; text-wrap: wrap; }
    SchemaForm .section { text-style: bold; color: $accent; padding: 1 0 0 0; }
    """

    class Changed(Message):
        def __init__(self, key: str, value: Any) -> None:
            super().__init__()
            self.key, self.value = key, value

    def __init__(self, fields: list[str], values: dict[str, Any], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.fields, self.values = fields, values
        self.errors: dict[str, tuple[str, Any]] = {}  # key -> (what is wrong, what was typed)

    def problem(self) -> str | None:
        """The first field whose entry is not valid, in words; None when every entry is."""
        for key, (error, typed) in self.errors.items():
            shown = "nothing" if typed is None or typed == "" else repr(typed)
            return f"{key}: {error} (you entered {shown}); fix it, or press escape to go back"
        return None

    def compose(self) -> ComposeResult:
        section = ""
        for key in self.fields:
            name, field = key.split(".", 1)
            if name != section:
                section = name
                yield Label(f"[{name}]", classes="section", markup=False)
            info = section_model(name).model_fields[field]
            current = self.values.get(key, info.default)
            with Horizontal(classes="row"):
                yield Label(field, classes="name")
                yield self._control(key, info.annotation, current)
            help_text = Static(info.description or "", classes="help", id=f"help-{key.replace('.', '-')}", markup=False)
            help_text.tooltip = info.description or None
            yield help_text

    @staticmethod
    def _control(key: str, annotation: Any, current: Any) -> Widget:
        kind, _ = _unwrap(annotation)
        wid = "field-" + key.replace(".", "-")
        if kind is bool:
            return Switch(bool(current), id=wid)
        if typing.get_origin(kind) is Literal:
            options = [(str(v), v) for v in typing.get_args(kind)]
            return Select(options, value=current, allow_blank=False, id=wid, classes="control", compact=True)
        input_type = "integer" if kind is int else "number" if kind is float else "text"
        return FieldInput(_as_text(current), type=input_type, id=wid, classes="control", compact=True,
                     placeholder="default" if current is None else "")  # fmt: skip

    def set_values(self, values: dict[str, Any]) -> None:
        """Show `values` (dotted keys of this form) in their controls, as if typed: no rebuild, so focus and
        scroll stay where they are. They are taken as the form's own, so no `Changed` echoes them back."""
        for key, value in values.items():
            if key not in self.fields:
                continue
            self.values[key] = value
            control = self.query_one("#field-" + key.replace(".", "-"))
            if isinstance(control, Input):
                control.value = _as_text(value)
            elif isinstance(control, (Switch, Select)):
                control.value = value

    def _key_of(self, widget: Widget) -> str | None:
        if not widget.id or not widget.id.startswith("field-"):
            return None
        return next((k for k in self.fields if "field-" + k.replace(".", "-") == widget.id), None)

    def _submit(self, widget: Widget, raw: Any) -> None:
        key = self._key_of(widget)
        if key is None:
            return
        section, field = key.split(".", 1)
        model = section_model(section)
        kind, optional = _unwrap(model.model_fields[field].annotation)
        value: Any = raw
        if isinstance(raw, str):
            if raw.strip() == "":
                value = None
            elif kind is int:
                value = int(raw) if raw.lstrip("-").isdigit() else raw
            elif kind is float:
                try:
                    value = float(raw)
                except ValueError:
                    value = raw
        help_widget = self.query_one(f"#help-{key.replace('.', '-')}", Static)
        error = self._check(model, field, value, optional)
        if error is None:
            self.errors.pop(key, None)
        else:
            self.errors[key] = (error, raw)
        widget.set_class(error is not None, "-invalid")
        help_widget.set_class(error is not None, "error")
        shown = error or model.model_fields[field].description or ""
        if str(help_widget.content) != shown:  # a key that keeps the text as it was costs no re-layout
            help_widget.update(shown)
        # Controls announce their initial value on mount: only a real edit goes into the preset.
        if error is None and value != self.values.get(key, model.model_fields[field].default):
            self.values[key] = value
            self.post_message(self.Changed(key, value))

    @staticmethod
    def _check(model: type[BaseModel], field: str, value: Any, optional: bool) -> str | None:
        if value is None:
            # An emptied field that cannot be unset would fall back to the schema's default unseen.
            default = model.model_fields[field].default
            return None if optional else f"a value is needed (the default is {default})"
        try:
            model.__pydantic_validator__.validate_assignment(model.model_construct(), field, value)
        except ValidationError as exc:
            return exc.errors()[0]["msg"].removeprefix("Value error, ")
        return None

    def on_input_changed(self, event: Input.Changed) -> None:
        # Only this form's own marks change here: nothing is ever written back into the Input being typed in.
        event.stop()
        self._submit(event.input, event.value)

    def on_switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self._submit(event.switch, event.value)

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._submit(event.select, event.value)
