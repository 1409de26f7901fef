"""Find the shipped presets and describe each in one line (the first line of its header comment).

Imports the stdlib only: `smoltrain presets` must answer instantly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The repository root: presets/ and assets/ live beside the package in a clone.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
PRESETS_DIR = PROJECT_ROOT / "presets"
DEMO_PRESET = PRESETS_DIR / "demo.toml"  # `smoltrain demo`: the whole pipeline, SFT -> reward -> DPO -> GRPO


@dataclass(frozen=True)
class PresetInfo:
    name: str
    path: Path
    description: str


def describe(path: Path) -> str:
    """The first comment line of a preset, without the leading '#'."""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if text:
                return text
        elif stripped:
            break
    return "(no description: start the file with a # comment)"


def list_presets(folder: Path = PRESETS_DIR) -> list[PresetInfo]:
    return [PresetInfo(p.stem, p, describe(p)) for p in sorted(folder.glob("*.toml"))]


def find_preset(name_or_path: str) -> Path:
    """A path as given, or the name of a shipped preset (`demo-sft` -> presets/demo-sft.toml)."""
    path = Path(name_or_path)
    if path.exists() or path.suffix == ".toml":
        return path
    shipped = PRESETS_DIR / f"{name_or_path}.toml"
    return shipped if shipped.exists() else path
