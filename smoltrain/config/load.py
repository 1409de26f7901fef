"""Read a TOML preset, apply `--set section.key=value` overrides, validate, and write it back.

Every failure becomes a ConfigError naming the file (or the --set) and the dotted key, with a
hint; pydantic's messages are translated, never shown raw. Relative local paths are resolved
against the preset's folder first, then the working directory, and stored absolute in the
run's config.toml so that file re-runs from anywhere.

Imports pydantic and the stdlib only (no torch).
"""

from __future__ import annotations

import difflib
import re
import sys
import typing
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from smoltrain.config.schema import RunConfig
from smoltrain.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

# Keys whose values may name a local file or folder.
LOCAL_PATH_KEYS = (("model", "name_or_path"), ("data", "path"), ("data", "eval_split"))
REWARD_PATH_KEYS = ("path", "model")  # a python reward's file; a reward model's run folder


def parse_override(text: str) -> tuple[list[str], Any]:
    """`train.learning_rate=1e-4` -> (["train", "learning_rate"], 0.0001).

    The value is read as a TOML value (numbers, booleans, arrays, quoted strings); anything that
    is not valid TOML is taken as a bare string, so `--set model.name_or_path=Qwen/Qwen3-0.6B` works.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"--set {text!r}: expected section.key=value", hint="for example --set train.learning_rate=1e-4"
        )
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, set[str]]:
    """Apply overrides in place; returns {dotted key: origin} so errors can name the --set.

    A pipeline stage is addressed by its index: `--set stages[1].train.max_steps=10`."""
    origins: dict[str, set[str]] = {}
    for text in overrides:
        path, value = parse_override(text)
        node: Any = raw
        for part in path[:-1]:
            name, index = _split_index(part)
            child = node.setdefault(name, {})
            if index is not None:
                if not isinstance(child, list) or index >= len(child):
                    raise ConfigError(f"--set {text!r}: there is no {name}[{index}]", hint=f"{name} has {len(child) if isinstance(child, list) else 0} entries, counted from 0")
                child = child[index]
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {part} is a value, not a section", hint="check the key's spelling")
            node = child
        node[path[-1]] = value
        origins.setdefault(".".join(path), set()).add(f"--set {text}")
    return origins


def _split_index(part: str) -> tuple[str, int | None]:
    """`stages[1]` -> ("stages", 1); `train` -> ("train", None)."""
    match = re.fullmatch(r"(\w+)\[(\d+)\]", part)
    return (match.group(1), int(match.group(2))) if match else (part, None)


def read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: preset file not found", hint="`smoltrain presets` lists the built-in presets")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a UTF-8 text file", hint="save the preset as UTF-8 TOML") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML syntax error: {exc}", hint="check quotes, brackets and = signs on that line") from None


def load_config(path: str | Path, overrides: list[str] | None = None) -> RunConfig:
    """Load and validate a preset file (plus overrides) into a RunConfig."""
    path = Path(path)
    raw = read_toml(path)
    origins = apply_overrides(raw, overrides or [])
    _resolve_local_paths(raw, base=path.resolve().parent)
    return validate_config(raw, source=str(path), origins=origins)


def validate_config(raw: dict[str, Any], source: str, origins: dict[str, set[str]] | None = None) -> RunConfig:
    """Validate a whole config, every pipeline stage included."""
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(exc, source, origins or {}) from None
    stage_configs(cfg, source)
    return cfg


def stage_configs(cfg: RunConfig, source: str = "config") -> list[tuple[str, RunConfig]]:
    """(name, config) for each stage to run: the config itself, or each [[stages]] entry merged over it."""
    if not cfg.stages:
        return [(cfg.train.technique, cfg)]
    base = cfg.model_dump(mode="json", exclude={"stages"}, exclude_unset=True)
    resolved: list[tuple[str, RunConfig]] = []
    for i, stage in enumerate(cfg.stages):
        name = stage.name or f"{i + 1}-{stage.technique}"
        if name in (n for n, _ in resolved):
            raise ConfigError(f"{source}: stages[{i}].name: {name!r} is used by an earlier stage", hint="give each stage its own name")
        raw = _deep_merge(base, stage.model_dump(mode="json", exclude={"technique", "name"}, exclude_unset=True))
        raw.setdefault("train", {})["technique"] = stage.technique
        try:
            resolved.append((name, RunConfig.model_validate(raw)))
        except ValidationError as exc:
            raise _config_error(exc, source, {}, prefix=f"stages[{i}].") from None
    return resolved


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def dump_config(cfg: RunConfig) -> str:
    """The resolved config as TOML (unset optional values left out), loadable by load_config."""
    return tomli_w.dumps(cfg.model_dump(mode="json", exclude_none=True))


def _resolve_local_paths(raw: dict[str, Any], base: Path) -> None:
    """Make relative local paths absolute, in the top level and in every stage."""
    tables = [raw, *(stage for stage in raw.get("stages", []) if isinstance(stage, dict))]
    for table in tables:
        for section, key in LOCAL_PATH_KEYS:
            if isinstance(table.get(section), dict):
                _resolve_key(table[section], key, base)
        grpo = table.get("grpo")
        rewards = grpo.get("rewards", []) if isinstance(grpo, dict) else []
        for reward in rewards if isinstance(rewards, list) else []:
            if isinstance(reward, dict):
                for key in REWARD_PATH_KEYS:
                    _resolve_key(reward, key, base)


def _resolve_key(table: dict[str, Any], key: str, base: Path) -> None:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        return
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return
    for root in (base, Path.cwd()):
        if (root / candidate).exists():
            table[key] = str((root / candidate).resolve())
            return


def _config_error(exc: ValidationError, source: str, origins: dict[str, set[str]], prefix: str = "") -> ConfigError:
    """Translate pydantic's first error into one line that names the file and the key."""
    err = exc.errors()[0]
    loc = [str(part) for part in err["loc"] if not isinstance(part, int)]
    key = (prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")).rstrip(".")
    key = key or "(top level)"
    where = ", ".join(sorted(origins[key])) if key in origins else source
    kind = err["type"]
    more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
    if kind == "extra_forbidden":
        parent_fields = _fields_at(loc[:-1])
        close = difflib.get_close_matches(loc[-1], parent_fields, n=1)
        section = ".".join(loc[:-1])
        hint = f"did you mean {prefix}{'.'.join(loc[:-1] + close)}?" if close else (
            f"valid keys{' in [' + section + ']' if section else ''}: {', '.join(parent_fields)}"
        )
        return ConfigError(f"{where}: unknown key {key}{more}", hint=hint)
    if kind == "missing":
        return ConfigError(f"{where}: missing required key {key}{more}", hint=_field_help(loc) or "add it to the preset")
    message = err["msg"].removeprefix("Value error, ")
    got = f" (got {err['input']!r})" if "input" in err and not isinstance(err["input"], dict) and loc else ""
    return ConfigError(f"{where}: {key}: {message}{got}{more}", hint=_field_help(loc) or "see `smoltrain validate --help`")


def _model_at(loc: list[str]) -> type[BaseModel] | None:
    model: type[BaseModel] = RunConfig
    for part in loc:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        # Look through list[Stage], list[RewardFunction] and `X | None` to the model inside.
        candidates = [annotation, *typing.get_args(annotation)]
        found = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if found is None:
            return None
        model = found
    return model


def _fields_at(loc: list[str]) -> list[str]:
    model = _model_at(loc)
    return list(model.model_fields) if model else []


def _field_help(loc: list[str]) -> str:
    model = _model_at(loc[:-1]) if loc else None
    field = model.model_fields.get(loc[-1]) if model else None
    return (field.description or "") if field else ""
