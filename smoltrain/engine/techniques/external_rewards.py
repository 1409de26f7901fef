"""GRPO rewards read from files the user points at: their own Python function, or a trained reward model.

python: the function `function` is imported from exactly the file `path` and called with TRL's
keyword arguments; what it returns is checked, so a mistake names the function instead of
surfacing as a tensor error deep in TRL.

reward_model: the folder is what a reward stage saves: either a PEFT adapter on
AutoModelForSequenceClassification (adapter_config.json with task_type SEQ_CLS; the one-logit score
head saved through modules_to_save) or a full sequence-classification model. It is loaded
unquantized (the LoRA merged in), in eval mode, on the training device, at build time (a bad folder
fails before training starts), and scores text tokenized the way TRL's RewardTrainer tokenized its
training pairs, so the scores mean what they meant in training.

Runs in the worker. Never imports textual.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from smoltrain.config.schema import RewardFunction
from smoltrain.engine.techniques.rewards import (
    TRL_KWARGS,
    RewardCallable,
    RewardFunctionError,
    Scores,
)
from smoltrain.errors import ConfigError, ModelError

# --------------------------------------------------------------------------- python: the user's own function


def load_user_function(spec: RewardFunction, where: str) -> Callable[..., Any]:
    """Import `spec.function` from exactly the file `spec.path` (never from sys.path)."""
    path = Path(str(spec.path)).expanduser()
    if not path.is_file():
        raise ConfigError(f"{where}.path: no such file: {path}", hint="give the path of the .py file with the function")
    # A name of our own keeps the user's module from shadowing or being shadowed by an installed one.
    module_name = f"smoltrain_user_reward_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"{where}.path: {path} cannot be imported as Python", hint="use a .py file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise ConfigError(
            f"{where}.path: importing {path} failed: {type(exc).__name__}: {exc}",
            hint="run `python " + str(path) + "` to see the full error",
        ) from exc
    fn = getattr(module, str(spec.function), None)
    if fn is None:
        defined = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_"))
        raise ConfigError(
            f"{where}.function: {path} defines no {spec.function!r}",
            hint=f"callables defined there: {', '.join(defined) or 'none'}",
        )
    if not callable(fn):
        raise ConfigError(f"{where}.function: {spec.function!r} in {path} is not a function", hint="name a function")
    return fn


def python_reward(fn: Callable[..., Any], label: str) -> RewardCallable:
    def reward(prompts: list[Any], completions: list[Any], **kw: Any) -> Scores:
        try:
            result = fn(prompts=prompts, completions=completions, **kw)
        except Exception as exc:
            columns = sorted(k for k in kw if k not in TRL_KWARGS | {"completion_ids"})
            raise RewardFunctionError(
                f"reward function {label} raised {type(exc).__name__}: {exc}",
                hint="it is called with keyword arguments prompts, completions, completion_ids, trainer_state, "
                f"log_extra, log_metric and the dataset columns ({', '.join(columns) or 'none'}); accept **kwargs",
            ) from exc
        return check_scores(result, len(completions), label)

    return reward


def check_scores(result: Any, expected: int, label: str) -> Scores:
    """A reward function's return as a list of floats (None kept), or a RewardFunctionError saying what is wrong."""
    hint = "return a list with one number (or None) per completion"
    if isinstance(result, (str, bytes, dict)) or not hasattr(result, "__len__"):
        raise RewardFunctionError(f"reward function {label} returned {type(result).__name__}, not a list", hint=hint)
    values = list(result)
    if len(values) != expected:
        raise RewardFunctionError(
            f"reward function {label} returned {len(values)} scores for {expected} completions", hint=hint
        )
    scores: Scores = []
    for i, value in enumerate(values):
        number = None if value is None else _as_float(value)
        if value is not None and (number is None or math.isinf(number)):
            raise RewardFunctionError(
                f"reward function {label} returned {value!r} ({type(value).__name__}) as score {i}, "
                "not a finite number",
                hint=hint,
            )
        # NaN is how TRL spells "does not apply"; None says the same and keeps the sample log's totals numbers.
        scores.append(None if number is None or math.isnan(number) else number)
    return scores


def _as_float(value: Any) -> float | None:
    if isinstance(value, (str, bytes)):  # float() would read "0.5"; a string score is a bug in the function
        return None
    try:
        return float(value)  # also numpy scalars and 0-d tensors
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------- reward_model: a trained scorer

MAX_LENGTH = 1024  # tokens scored per prompt + completion; GRPO completions are short, and this bounds memory
BATCH_SIZE = 8  # sequences per forward pass: GRPO scores a whole generation batch at once


@dataclass(frozen=True)
class ModelKind:
    """What a folder named in a preset must hold: its adapter's task_type, its architecture's suffix."""

    task_type: str
    architecture: str
    what: str  # "a reward model"
    hint: str  # where such a model comes from


REWARD_MODEL = ModelKind("SEQ_CLS", "ForSequenceClassification", "a reward model",
                         "point it at the output of a reward stage (train.technique = 'reward')")  # fmt: skip
LANGUAGE_MODEL = ModelKind("CAUSAL_LM", "ForCausalLM", "a language model",
                           "point it at a policy run's folder (sft, dpo, grpo, ...) or a model folder")  # fmt: skip


def model_folder(
    folder: Path, where: str, key: str = "model", kind: ModelKind = REWARD_MODEL
) -> tuple[Path, dict[str, Any] | None]:
    """The folder holding the model, and its adapter config when it is a PEFT adapter."""
    if not folder.is_dir():
        raise ConfigError(f"{where}.{key}: no such folder: {folder}", hint=kind.hint)
    holds_model = (folder / "adapter_config.json").is_file() or (folder / "config.json").is_file()
    if not holds_model and (folder / "final").is_dir():
        folder = folder / "final"  # a run directory: its result lives in final/
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():
        adapter = json.loads(adapter_config.read_text())
        if adapter.get("task_type") != kind.task_type:
            raise ConfigError(f"{where}.{key}: {folder} holds a {adapter.get('task_type')} adapter, not {kind.what}",
                              hint=kind.hint)  # fmt: skip
        base = adapter.get("base_model_name_or_path")
        # A missing local base would otherwise be looked up on the hub as a model id, with retries.
        if not base or (base.startswith(("/", ".", "~")) and not Path(base).expanduser().is_dir()):
            raise ConfigError(
                f"{where}.{key}: the adapter in {folder} names base model {base!r}, which is not there",
                hint="set base_model_name_or_path in its adapter_config.json to the base model's folder or hub id",
            )
        _require_safetensors(folder, where, key)
        return folder, adapter
    config = folder / "config.json"
    if not config.is_file():
        raise ConfigError(f"{where}.{key}: {folder} holds neither adapter_config.json nor config.json", hint=kind.hint)
    architectures = json.loads(config.read_text()).get("architectures") or []
    if not any(a.endswith(kind.architecture) for a in architectures):
        raise ConfigError(f"{where}.{key}: {folder} is a {', '.join(architectures) or 'model'}, not {kind.what}",
                          hint=kind.hint)  # fmt: skip
    _require_safetensors(folder, where, key)
    return folder, None


def _require_safetensors(folder: Path, where: str, key: str) -> None:
    # Pickled .bin weights can run code when loaded; we only load safetensors.
    if not any(folder.glob("*.safetensors")):
        raise ConfigError(f"{where}.{key}: {folder} has no .safetensors weights", hint="save the model as safetensors")


def _dtype(device: str) -> torch.dtype:
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def load_reward_model(folder: Path, device: str, where: str, key: str = "model") -> RewardModelScorer:
    """Load the reward model in `folder` onto `device`; errors name `<where>.model`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder, adapter = model_folder(Path(folder), where, key)
    kwargs: dict[str, Any] = {"num_labels": 1, "dtype": _dtype(device), "use_safetensors": True}
    try:
        if adapter is not None:
            from peft import AutoPeftModelForSequenceClassification

            # Merging folds the LoRA into the weights: plain forward passes, no adapter overhead per batch.
            model = AutoPeftModelForSequenceClassification.from_pretrained(str(folder), **kwargs).merge_and_unload()
        else:
            model = AutoModelForSequenceClassification.from_pretrained(str(folder), **kwargs)
        # A reward stage saves its tokenizer next to the weights; an adapter alone falls back to its base model's.
        has_tokenizer = (folder / "tokenizer_config.json").is_file()
        tokenizer_folder = str(folder) if has_tokenizer or adapter is None else adapter["base_model_name_or_path"]
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(
            f"{where}.{key}: cannot load the reward model in {folder}: {exc}",
            hint="check that the folder (and the base model its adapter names) is complete",
        ) from exc
    return RewardModelScorer(model.to(device).eval(), tokenizer, device)


class RewardModelScorer:
    """Scores prompt + completion with a sequence-classification model; TRL names the reward by `__name__`."""

    __name__ = "reward_model"

    def __init__(self, model: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        model.requires_grad_(False)
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        # The score is read at the last non-pad token, which the model finds through pad_token_id.
        model.config.pad_token_id = tokenizer.pad_token_id
        tokenizer.padding_side = "right"
        # Cut long texts from the left: the score token sits at the end, so the completion must survive.
        tokenizer.truncation_side = "left"
        limits = [MAX_LENGTH, getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
        self.max_length = min(n for n in limits if isinstance(n, int) and n > 0)

    def texts(self, prompts: list[Any], completions: list[Any]) -> tuple[list[str], bool]:
        """The texts to score and whether the tokenizer should add special tokens (the template already has them)."""
        if prompts and not isinstance(prompts[0], str):
            chats = [list(p) + list(c) for p, c in zip(prompts, completions)]
            return [self.tokenizer.apply_chat_template(messages, tokenize=False) for messages in chats], False
        # RewardTrainer appended EOS to standard (non-chat) pairs before tokenizing: do the same.
        eos = self.tokenizer.eos_token or ""
        joined = [p + c for p, c in zip(prompts, completions)]
        return [t if t.endswith(eos) else t + eos for t in joined], True

    def __call__(self, prompts: list[Any], completions: list[Any], **kw: Any) -> list[float | None]:
        texts, special = self.texts(prompts, completions)
        scores: list[float | None] = []
        with torch.no_grad():
            for start in range(0, len(texts), BATCH_SIZE):
                batch = self.tokenizer(
                    texts[start : start + BATCH_SIZE],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    add_special_tokens=special,
                    return_tensors="pt",
                )
                logits = self.model(**batch.to(self.device)).logits
                scores.extend(logits[:, 0].float().tolist())
        return scores
