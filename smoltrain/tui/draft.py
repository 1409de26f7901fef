"""The preset the wizard is building: a raw TOML-shaped dict, validated the way `smoltrain run` validates.

The wizard's steps write into `Draft.raw`; `validate()` runs the one schema (config.load) over it, so
a draft that validates is a preset the engine runs. Saved presets go to the user's preset folder,
listed on the home screen beside the shipped ones. Pydantic and stdlib only; never imports torch.
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smoltrain.config.presets import PresetInfo, list_presets
from smoltrain.config.techniques import FACTS
from smoltrain.errors import SmoltrainError

if TYPE_CHECKING:  # the schema loads when a draft is first validated, not before the home screen
    from smoltrain.config.schema import RunConfig


def user_presets_dir() -> Path:
    """$SMOLTRAIN_PRESETS, else ~/.config/smoltrain/presets: the user's own presets, kept out of the clone."""
    if os.environ.get("SMOLTRAIN_PRESETS"):
        return Path(os.environ["SMOLTRAIN_PRESETS"]).expanduser()
    config = os.environ.get("XDG_CONFIG_HOME") or "~/.config"
    return Path(config).expanduser() / "smoltrain" / "presets"


def all_presets() -> list[tuple[str, PresetInfo]]:
    """("built-in" | "yours", preset) for the home screen."""
    return [("built-in", p) for p in list_presets()] + [("yours", p) for p in list_presets(user_presets_dir())]


@dataclass
class Draft:
    raw: dict[str, Any] = field(default_factory=dict)
    description: str = "Made with the smoltrain wizard."

    @classmethod
    def new(cls) -> Draft:
        return cls({"model": {}, "quantization": {"mode": "4bit"}, "lora": {}, "data": {}, "train": {"technique": "sft"}})

    @classmethod
    def from_preset(cls, path: Path, description: str = "") -> Draft:
        """A preset as a draft, its relative paths made absolute (a wizard preset may be saved elsewhere)."""
        from smoltrain.config.load import load_config

        cfg = load_config(path)
        raw = cfg.model_dump(mode="json", exclude_unset=True, exclude_none=True)
        raw.pop("name", None)
        return cls(raw, description or f"Based on {path.name}.")

    def section(self, name: str) -> dict[str, Any]:
        return self.raw.setdefault(name, {})

    @property
    def technique(self) -> str:
        return str(self.raw.get("train", {}).get("technique", "sft"))

    @property
    def is_pipeline(self) -> bool:
        return bool(self.raw.get("stages"))

    def set(self, dotted: str, value: Any) -> None:
        """Set `section.key`; None removes the key (back to the schema's default)."""
        section, key = dotted.split(".", 1)
        if value is None:
            self.section(section).pop(key, None)
        else:
            self.section(section)[key] = value

    def get(self, dotted: str, default: Any = None) -> Any:
        section, key = dotted.split(".", 1)
        return self.raw.get(section, {}).get(key, default)

    def cleaned(self) -> dict[str, Any]:
        """The raw dict without empty sections, technique sections of other techniques left out."""
        raw = copy.deepcopy(self.raw)
        techniques = {s.get("technique") for s in raw.get("stages", [])} | {self.technique}
        for name in FACTS:  # each technique's own section ([grpo], [curate], ...)
            if name not in techniques:
                raw.pop(name, None)
        return {k: v for k, v in raw.items() if v not in ({}, [], None)}

    def validate(self) -> RunConfig:
        """Raises SmoltrainError (one line naming the key, plus a hint) when the draft cannot run."""
        from smoltrain.config.load import validate_config

        return validate_config(self.cleaned(), source="wizard")

    def error(self) -> SmoltrainError | None:
        try:
            self.validate()
        except SmoltrainError as exc:
            return exc
        return None

    def to_toml(self) -> str:
        import tomli_w

        header = f"# {self.description}\n# Run: smoltrain run <this file>\n\n"
        return header + tomli_w.dumps(self.cleaned())

    def save(self, name: str, folder: Path | None = None) -> Path:
        """Write the draft as `<folder>/<name>.toml` (the user's preset folder by default)."""
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "my-preset"
        folder = folder or user_presets_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{slug}.toml"
        path.write_text(self.to_toml(), encoding="utf-8")
        return path
