"""Read a TOML preset, apply `--set section.key=value` overrides, validate, and write it back.

Every failure becomes a ConfigError naming the file (or the --set) and the dotted key, with a
hint; pydantic's messages are translated ("must be an integer", never "int_parsing"), and every
problem is named at once, so one round of fixes is enough. Relative local paths are resolved
against the preset's folder first, then the working directory, and stored absolute in the
run's config.toml so that file re-runs from anywhere.

Imports pydantic and the stdlib only (no torch).
"""

from __future__ import annotations

import difflib
import re
import sys
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ValidationError

from smoltrain.config import pipeline
from smoltrain.config.schema import REWARDS_SECTIONS, RunConfig
from smoltrain.config.techniques import facts
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
    """Validate a whole config, every pipeline stage included. Every problem found is named at once."""
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(_problems(exc, source, origins or {}), source) from None
    stages = stage_configs(cfg, source, origins)
    if cfg.eval is not None:
        problems = _eval_stage_problems(cfg, stages, source)
        if problems:
            raise _config_error(problems, source)
    return cfg


def _eval_stage_problems(cfg: RunConfig, stages: list[tuple[str, RunConfig]], source: str) -> list[_Problem]:
    """[eval] names stages: each must be one of this run's, of the right kind (a [rounds] member: every round's)."""
    assert cfg.eval is not None
    section, rounds = cfg.eval, cfg.rounds.stages if cfg.rounds else []
    policies = [name for name, stage in stages if facts(stage.train.technique).policy]
    rewards = [name for name, stage in stages if not facts(stage.train.technique).policy]
    problems = []
    for i, name in enumerate(section.stages or []):
        if name in rounds and all(n in policies for n in pipeline.expand_names([name], cfg)):
            continue
        if name not in policies:
            what = "is a reward stage: it scores answers and gives none" if name in rewards else "is not a stage of this run"
            problems.append(_Problem(source, f"eval.stages[{i}]: {name!r} {what}",
                                     f"evaluate the policy stages: {', '.join(policies) or 'none'}"))  # fmt: skip
    judge = section.judge.reward_model if section.judge else None
    if judge is not None and judge in policies:
        problems.append(_Problem(source, f"eval.judge.reward_model: {judge!r} is a {dict(stages)[judge].train.technique} "
                                         "stage, not a reward model", f"name a reward stage: {', '.join(rewards) or 'none'}"))  # fmt: skip
    return problems


def stage_configs(
    cfg: RunConfig, source: str = "config", origins: dict[str, set[str]] | None = None
) -> list[tuple[str, RunConfig]]:
    """(name, config) for each stage to run: the config itself, or each [[stages]] entry merged over it
    ([rounds] unrolled: config/pipeline.py). The problems of every stage are named together; `origins`
    (from apply_overrides) blames a --set."""
    if not cfg.stages:
        if cfg.rounds is not None or (cfg.data is not None and cfg.data.curated is not None):
            what = "rounds" if cfg.rounds is not None else "data.curated"
            raise _config_error([_Problem(source, f"{what}: names pipeline stages, and this preset has no [[stages]]",
                                          "add [[stages]]: e.g. a curate stage, then a dpo stage with data = { curated = \"curate\" }")],
                                source)  # fmt: skip
        return [(cfg.train.technique, cfg)]
    problems = [_Problem(source, f"{key}: {text}", hint) for key, text, hint in pipeline.rounds_problems(cfg)]
    if problems:
        raise _config_error(problems, source)
    base = cfg.model_dump(mode="json", exclude={"stages", "rounds"}, exclude_unset=True)
    resolved: list[tuple[int, str, RunConfig]] = []
    for planned in pipeline.planned_stages(cfg):
        i, name, stage = planned.index, planned.name, planned.stage
        if name in (n for _, n, _ in resolved) and planned.round is None:
            problems.append(
                _Problem(source, f"stages[{i}].name: {name!r} is used by an earlier stage", "give each stage its own name")
            )
        raw = _deep_merge(base, stage.model_dump(mode="json", exclude={"technique", "name"}, exclude_unset=True))
        raw.setdefault("train", {})["technique"] = stage.technique
        if "data" not in raw:
            problems.append(_Problem(source, f"stages[{i}]: missing required key data",
                                     "give the stage its data, e.g. data = { path = \"train.jsonl\" }, or add a top-level [data]"))  # fmt: skip
            continue
        if "curated" in stage.data and "path" not in stage.data:
            raw["data"].pop("path", None)  # the stage's own curated replaces a top-level [data] path
        try:
            resolved.append((i, name, RunConfig.model_validate(raw)))
        except ValidationError as exc:
            problems.extend(_problems(exc, source, origins or {}, prefix=f"stages[{i}]."))
    if not problems:
        problems = [_Problem(source, f"{key}: {text}", hint) for key, text, hint in pipeline.curated_problems(resolved)]
    if problems:  # a stage repeated in [rounds] makes its mistakes once per round: each is said once
        raise _config_error(list(dict.fromkeys(problems)), source)
    return [(name, stage_cfg) for _, name, stage_cfg in resolved]


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
        for name in sorted(set(REWARDS_SECTIONS.values())):  # [[grpo.rewards]], [[rloo.rewards]], ...
            rewards = table.get(name)
            _resolve_rewards(rewards.get("rewards", []) if isinstance(rewards, dict) else [], base)
    evaluation = raw.get("eval")
    if not isinstance(evaluation, dict):
        return
    tasks = evaluation.get("tasks", [])
    for task in tasks if isinstance(tasks, list) else []:
        if isinstance(task, dict):
            for key in ("harness", "prompts"):
                _resolve_key(task, key, base)
            _resolve_rewards(task.get("rewards") or [], base)
    if isinstance(evaluation.get("judge"), dict):
        for key in ("reward_model", "model"):
            _resolve_key(evaluation["judge"], key, base)


def _resolve_rewards(rewards: Any, base: Path) -> None:
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


# --- pydantic's errors, in words ------------------------------------------------------------------

# A preset with more problems than this is usually the wrong file: the rest are only counted.
MAX_PROBLEMS_SHOWN = 5

# Pydantic error types that mean "not the right kind of value": said as the type the key takes.
_KIND_ERRORS = {"int_from_float", "literal_error", "model_attributes_type"}
_BOUNDS = {"greater_than": "more than", "greater_than_equal": "at least", "less_than": "less than", "less_than_equal": "at most"}
_TYPE_WORDS: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"),
    int: ("an integer", "integers"),
    float: ("a number", "numbers"),
    bool: ("true or false", "true or false values"),
}


@dataclass(frozen=True)
class _Problem:
    """One thing wrong in a config: where it comes from (the file or a --set), what, and what to do."""

    where: str
    text: str  # "unknown key train.max_stepz", "train.max_steps: must be an integer (got 'abc')"
    hint: str
    aside: str = ""  # added to the text when several problems share one message: "did you mean max_steps?"


def _problems(exc: ValidationError, source: str, origins: dict[str, set[str]], prefix: str = "") -> list[_Problem]:
    """Every pydantic error as a _Problem. A value that fits no branch of a union (lora.target_modules
    is a list of strings or "all-linear") gives one error per branch: they are said once, as one."""
    errors = exc.errors()
    located = [_locate(err["loc"]) for err in errors]
    whole_value: dict[tuple[int | str, ...], Any] = {}  # union key -> the value as given (the shortest loc holds it)
    for err, (path, _, in_union) in sorted(zip(errors, located), key=lambda item: -len(item[0]["loc"])):
        if in_union:
            whole_value[path] = err.get("input")
    problems: list[_Problem] = []
    said: set[tuple[int | str, ...]] = set()
    for err, (path, annotation, in_union) in zip(errors, located):
        if in_union:
            if path in said:
                continue
            said.add(path)
            err = {**err, "type": "union", "input": whole_value[path]}
        problems.append(_problem(err, path, annotation, source, origins, prefix))
    return problems


def _problem(
    err: Any, path: tuple[int | str, ...], annotation: Any, source: str, origins: dict[str, set[str]], prefix: str
) -> _Problem:
    key = _key(prefix, path)
    where = _origin(key, origins) or source
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = _locate(path[:-1])[1]
        fields = list(parent.model_fields) if _is_model(parent) else []
        close = difflib.get_close_matches(str(path[-1]), fields, n=1)
        if close:
            return _Problem(where, f"unknown key {key}", f"did you mean {_key(prefix, (*path[:-1], close[0]))}?",
                            f"did you mean {close[0]}?")  # fmt: skip
        section = ".".join(str(p) for p in path[:-1] if not isinstance(p, int))
        valid = f"valid keys{' in [' + section + ']' if section else ''}: {', '.join(fields)}"
        return _Problem(where, f"unknown key {key}", valid)
    if kind == "missing":
        if _is_model(annotation):
            needed = [(name, f.description) for name, f in annotation.model_fields.items() if f.is_required()]
            hint = f"add a [{key}] section with " + "; ".join(f"{name}: {text}" if text else name for name, text in needed)
            return _Problem(where, f"missing required section [{key}]", hint)
        return _Problem(where, f"missing required key {key}", _field_help(path) or "add it to the preset")
    value = err.get("input")
    got = f" (got {_shown(value)})" if "input" in err and not isinstance(value, dict) and path else ""
    # "--set train.max_steps=abc: must be an integer" names the key already.
    subject = f"{key}: " if key and key not in origins else ""
    hint = _field_help(path) or "see `smoltrain validate --help`"
    return _Problem(where, f"{subject}{_must(err, annotation, path)}{got}", hint)


def _must(err: Any, annotation: Any, path: tuple[int | str, ...]) -> str:
    """What the value must be, in words: 'must be an integer', "must be one of 'cosine' or 'linear'"."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "value_error":
        return str(err["msg"]).removeprefix("Value error, ")
    if kind in _BOUNDS and ctx:
        limit = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {limit:g}" if isinstance(limit, float) else f"must be {_BOUNDS[kind]} {limit}"
    if kind in ("model_type", "model_attributes_type") and len(path) == 1:
        return f"must be a [{path[0]}] section, not a single value"
    described = _describe(annotation)
    if described and (kind == "union" or kind in _KIND_ERRORS or kind.endswith(("_type", "_parsing"))):
        return f"must be {described}"
    return str(err["msg"]).replace("Input should be", "must be", 1)


def _describe(annotation: Any, plural: bool = False) -> str | None:
    """A type in words: 'an integer', 'a list of strings', "one of 'auto' or 'none'"; None for types without words."""
    annotation = _without_none(annotation)
    if annotation in _TYPE_WORDS:
        return _TYPE_WORDS[annotation][plural]
    if _is_model(annotation):
        return "tables" if plural else "a table"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        values = [_shown(v) for v in args]
        return values[0] if len(values) == 1 else f"one of {', '.join(values[:-1])} or {values[-1]}"
    if origin is list and args:
        inner = _describe(args[0], plural=True)
        return f"{'lists' if plural else 'a list'} of {inner}" if inner else None
    if origin is dict:
        inner = _describe(args[1], plural=True) if len(args) == 2 else None
        return f"{'tables' if plural else 'a table'}{' of ' + inner if inner else ''}"
    if _is_union(annotation):
        parts = [_describe(arg, plural) for arg in args if arg is not type(None)]
        return " or ".join(p for p in parts if p) if all(parts) else None
    return None


def _shown(value: Any) -> str:
    """A value as the user wrote it in TOML: true, not True."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _locate(loc: tuple[int | str, ...]) -> tuple[tuple[int | str, ...], Any, bool]:
    """(the key's path, the type declared there, whether a union's branch failed). Pydantic names the
    branch it tried after a union key ("lora.target_modules.list[str][0]"): the path stops at the key."""
    annotation: Any = RunConfig
    path: list[int | str] = []
    for part in loc:
        annotation = _without_none(annotation)
        if _is_union(annotation):
            return tuple(path), annotation, True
        args = typing.get_args(annotation)
        if _is_model(annotation):
            field = annotation.model_fields.get(str(part))
            annotation = field.annotation if field else Any
        elif typing.get_origin(annotation) is list and args:
            annotation = args[0]
        elif typing.get_origin(annotation) is dict and len(args) == 2:
            annotation = args[1]
        else:
            annotation = Any
        path.append(part)
    return tuple(path), _without_none(annotation), False


def _key(prefix: str, path: tuple[int | str, ...]) -> str:
    """("grpo", "rewards", 0, "name") -> "grpo.rewards[0].name", after `prefix` ("stages[1].")."""
    return (prefix + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")).rstrip(".")


def _origin(key: str, origins: dict[str, set[str]]) -> str | None:
    """The --set flags behind `key`: one that set it, a table above it, or a key below it (`--set trian.x=1`)."""
    hits = {flag for set_key, flags in origins.items() if set_key == key or _below(key, set_key) or _below(set_key, key)
            for flag in flags}  # fmt: skip
    return ", ".join(sorted(hits)) if hits else None


def _below(key: str, table: str) -> bool:
    return bool(table) and key.startswith((table + ".", table + "["))


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_union(annotation: Any) -> bool:
    return typing.get_origin(annotation) in (typing.Union, types.UnionType)


def _without_none(annotation: Any) -> Any:
    """`X | None` -> X: an optional key's type is what it takes when it is given."""
    args = [arg for arg in typing.get_args(annotation) if arg is not type(None)] if _is_union(annotation) else []
    return args[0] if len(args) == 1 else annotation


def _field_help(path: tuple[int | str, ...]) -> str:
    if not path:
        return ""
    model = _locate(path[:-1])[1]
    field = model.model_fields.get(str(path[-1])) if _is_model(model) else None
    return (field.description or "") if field else ""


def _config_error(problems: list[_Problem], source: str) -> ConfigError:
    """One problem: '<where>: <what>' and its hint. Several: one line naming the file (or the --set
    behind all of them) that lists each, up to MAX_PROBLEMS_SHOWN, so one fix-and-retry fixes them all."""
    if len(problems) == 1:
        return ConfigError(f"{problems[0].where}: {problems[0].text}", hint=problems[0].hint)
    header = problems[0].where if len({p.where for p in problems}) == 1 else source
    items = [
        (f"{p.where}: " if p.where != header else "") + p.text + (f" ({p.aside})" if p.aside else "")
        for p in problems[:MAX_PROBLEMS_SHOWN]
    ]
    if len(problems) > MAX_PROBLEMS_SHOWN:
        items.append(f"and {len(problems) - MAX_PROBLEMS_SHOWN} more")
    return ConfigError(f"{header}: {len(problems)} problems: {'; '.join(items)}",
                       hint="fix each of them; `smoltrain validate` checks the preset again without training")  # fmt: skip
