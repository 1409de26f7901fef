"""Benchmark tasks through EleutherAI's lm-evaluation-harness (`lm_eval`), on a model smoltrain loaded.

A task is a harness name (gsm8k, arc_easy, hellaswag, mmlu, ifeval, ...: the harness's own YAML,
data from the hub) or a task YAML file of the user's. A YAML's relative `data_files` are read from
the YAML's folder (the harness would read them from the working directory), so a task and its
local .jsonl travel together and work offline.

The model is handed over as an object (`HFLM(pretrained=model)`): the run's adapter on its base,
loaded the way `smoltrain chat` loads it, so the harness scores exactly what the user will run.
Generative tasks go through the model's chat template, where it has one, with smoltrain's template
rules (engine/data/chat_template.py): a system prompt folded into the first user turn for templates
that refuse one, instead of the harness's dropping it; and generation stops at the template's
end-of-turn marker as well as at EOS.

Per-item scores come from the harness's logged samples, so two models' results can be compared item
by item (evalresults.py) instead of by their means alone.

Runs in the CLI's process or the worker. Imports lm_eval lazily (it is an optional extra: `pip install
"smoltrain[eval]"`); never textual.
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import io
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from smoltrain.config.schema import EvalTask
from smoltrain.engine.data.chat_template import ChatTemplate, has_chat_template
from smoltrain.evalresults import TaskScores
from smoltrain.errors import ConfigError, DataError

TASK_FILE_SUFFIXES = (".yaml", ".yml")


def _lm_eval() -> Any:
    try:
        import lm_eval
    except ImportError:
        raise ConfigError("eval: harness tasks need lm-evaluation-harness, which is not installed",
                          hint='pip install "smoltrain[eval]"  (or: pip install lm_eval)') from None  # fmt: skip
    return lm_eval


def is_task_file(name: str) -> bool:
    return name.endswith(TASK_FILE_SUFFIXES)


@contextlib.contextmanager
def task_manager(spec: EvalTask, where: str) -> Iterator[tuple[Any, str]]:
    """The harness's TaskManager that knows the task, and the task's name in it."""
    _lm_eval()
    from lm_eval.tasks import TaskManager

    name = str(spec.harness)
    if not is_task_file(name):
        manager = _default_tasks()
        if name not in manager.all_tasks:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3)
            raise ConfigError(f"{where}.harness: unknown lm-evaluation-harness task {name!r}",
                              hint=f"did you mean {', '.join(close)}?" if close else
                              "list them with `lm_eval ls tasks`, or give a task YAML file")  # fmt: skip
        yield manager, name
        return
    path = Path(name).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}.harness: no such task file: {path}", hint="give a task YAML file, or a task name such as gsm8k")
    with tempfile.TemporaryDirectory(prefix="smoltrain-task-") as folder:
        task_name = _local_copy(path, Path(folder), where)
        yield TaskManager(include_path=folder, include_defaults=False), task_name


@functools.lru_cache(maxsize=1)
def _default_tasks() -> Any:
    """The harness's own task index: built once per process (it reads ~15,000 YAML files, seconds)."""
    from lm_eval.tasks import TaskManager

    return TaskManager()


def _local_copy(path: Path, folder: Path, where: str) -> str:
    """The task YAML with its relative data_files made absolute (from the YAML's folder); its task name."""
    import yaml

    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}.harness: {path} is not a readable YAML file ({exc})".replace("\n", " "),
                          hint="check it against the harness's task guide") from None  # fmt: skip
    if not isinstance(config, dict) or not isinstance(config.get("task"), str):
        raise ConfigError(f"{where}.harness: {path} names no task (a top-level `task: name` key)",
                          hint="a harness task YAML starts with task:, dataset_path: and output_type:")  # fmt: skip
    files = (config.get("dataset_kwargs") or {}).get("data_files")
    if files is not None:
        config["dataset_kwargs"]["data_files"] = _absolute(files, path.parent, where, path)
    (folder / path.name).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return str(config["task"])


def _absolute(files: Any, root: Path, where: str, path: Path) -> Any:
    if isinstance(files, dict):
        return {split: _absolute(f, root, where, path) for split, f in files.items()}
    if isinstance(files, list):
        return [_absolute(f, root, where, path) for f in files]
    local = Path(str(files)).expanduser()
    local = local if local.is_absolute() else root / local
    if not local.exists():
        raise DataError(f"{where}.harness: {path} reads {files}, which is not there ({local})",
                        hint="data_files is read from the task file's folder")  # fmt: skip
    return str(local)


def _lm_class() -> Any:
    from lm_eval.models.huggingface import HFLM

    class SmoltrainLM(HFLM):
        """HFLM on a loaded model, with smoltrain's chat-template rules and the template's end of turn as a stop."""

        def __init__(self, model: Any, tokenizer: Any, batch_size: int, stops: list[str]) -> None:
            super().__init__(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
            self._stops = stops
            self._template = ChatTemplate(tokenizer) if has_chat_template(tokenizer) else None

        def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
            if self._template is None or not add_generation_prompt:
                return str(super().apply_chat_template(chat_history, add_generation_prompt))
            turns = self._template.fit(chat_history, generation_prompt=True)[0]
            return str(self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))

        def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
            for request in requests:
                kwargs = request.args[1]
                until = kwargs.get("until") or []
                until = [until] if isinstance(until, str) else list(until)
                kwargs["until"] = until + [s for s in self._stops if s not in until]
            return list(super().generate_until(requests, disable_tqdm=True))

    return SmoltrainLM


def check_task(spec: EvalTask, where: str) -> None:
    """The task is known and its data can be read now (downloaded, or from the cache when offline):
    before any weights load."""
    with task_manager(spec, where) as (manager, name), _quiet(), _offline_if_needed():
        _load(manager, name, where)


def run_task(model: Any, tokenizer: Any, spec: EvalTask, *, limit: int | None, batch_size: int, where: str) -> TaskScores:
    """Score the loaded model on one harness task: per-item scores of each metric (and filter)."""
    lm_eval = _lm_eval()
    marker = ChatTemplate(tokenizer).end_of_turn if has_chat_template(tokenizer) else None
    with task_manager(spec, where) as (manager, name), _quiet(), _offline_if_needed():
        lm = _lm_class()(model, tokenizer, batch_size, [marker] if marker else [])
        tasks = _load(manager, name, where)
        # The chat template for tasks the model answers; a loglikelihood task scores the raw continuation.
        chat = has_chat_template(tokenizer) and any(t.OUTPUT_TYPE == "generate_until" for t in tasks)
        try:
            out = lm_eval.simple_evaluate(
                model=lm, tasks=[name], num_fewshot=spec.num_fewshot, limit=limit, task_manager=manager,
                apply_chat_template=chat, fewshot_as_multiturn=chat and bool(spec.num_fewshot),
                system_instruction=spec.system_prompt, log_samples=True, bootstrap_iters=0, verbosity="ERROR",
            )  # fmt: skip
        except (ConnectionError, OSError, ValueError) as exc:
            raise _unreachable(name, exc, where) from None
    if out is None:
        raise ConfigError(f"{where}.harness: the harness returned no results for {name!r}", hint="run it with lm_eval to see why")
    return _scores(out)


def _load(manager: Any, name: str, where: str) -> list[Any]:
    """The task's Task objects (a group's subtasks), their data loaded: a user error if it cannot be."""
    try:
        return list(manager.load([name])["tasks"].values())
    except (ConnectionError, OSError, ValueError) as exc:
        raise _unreachable(name, exc, where) from None


def _offline_if_needed() -> contextlib.AbstractContextManager[None]:
    """Offline (asked for, or no network): the harness's dataset loads use the cache at once, or fail at
    once, instead of ~25 s of retries per file."""
    from smoltrain.engine.data.load import forced_offline, hub_offline_now

    return forced_offline() if hub_offline_now() else contextlib.nullcontext()


def _unreachable(name: str, exc: Exception, where: str) -> DataError:
    from smoltrain.engine.data.load import hub_offline_now

    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
    if hub_offline_now() or "offline" in first.lower() or "connect" in first.lower():
        return DataError(f"{where}.harness: the data of task {name!r} is not in the local Hugging Face cache, and the "
                         f"hub cannot be reached ({first})",
                         hint="connect once to download it, or give a task YAML over a local file (see docs/eval.md)",
                         needs_network=True)  # fmt: skip
    return DataError(f"{where}.harness: task {name!r} could not load its data ({first})",
                     hint="check the task's dataset_path and data_files")  # fmt: skip


def _scores(out: dict[str, Any]) -> TaskScores:
    """Per-item values of each metric from the logged samples (a group's subtasks one after another)."""
    metrics: dict[str, list[float | None]] = {}
    higher: dict[str, bool] = {}
    for task, samples in out.get("samples", {}).items():
        task_higher = out.get("higher_is_better", {}).get(task, {})
        names = [k for k in out.get("results", {}).get(task, {}) if "," in k and not k.split(",")[0].endswith("_stderr")]
        filters = {k.split(",", 1)[1] for k in names}
        for sample in samples:
            for key in names:
                metric, filt = key.split(",", 1)
                if sample.get("filter") != filt or metric not in sample:
                    continue
                label = metric if len(filters) == 1 else f"{metric} ({filt})"
                value = sample[metric]
                metrics.setdefault(label, []).append(float(value) if isinstance(value, (int, float)) else None)
                higher[label] = bool(task_higher.get(metric, True))
    return TaskScores(kind="harness", metrics=metrics, higher_is_better=higher)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The harness logs each request batch and a results table, and draws progress bars: smoltrain prints its own."""
    import datasets

    bars = datasets.utils.logging.is_progress_bar_enabled()
    datasets.utils.logging.disable_progress_bar()
    loggers = [logging.getLogger(n) for n in ("lm_eval", "lm-eval", "lm_eval.evaluator", "lm_eval.models.huggingface")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # the harness's own tqdm bars (building requests)
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        if bars:
            datasets.utils.logging.enable_progress_bar()
