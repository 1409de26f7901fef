"""Finding a run's trained model, loading it, and the chat session: what both the terminal chat
(chat_terminal.py, `smoltrain chat`) and the app's chat server (chat_server.py) use.

Loading: `find_model` reads the run folder only (no torch, so a wrong folder fails in a blink): the
trained adapter is `RunDir.result(stage)`, its base is adapter_config.json's `base_model_name_or_path`
(for a later pipeline stage, the previous stage's merged/ in this run, found again if the run folder
was moved). `load_model` loads the base once, in 4-bit as training did on CUDA with quantization.mode
= "4bit", else in the config's dtype on CUDA and float32 on CPU (a CPU QLoRA run's adapter then
meets unquantized weights: answers can differ a little from training's samples), and puts the PEFT
adapter on it; "base" answers come from the same weights inside `model.disable_adapter()`. (A full
fine-tune has no adapter: its final/ is the model, and --compare loads the base beside it, on first use.)

The session: `ChatSettings` (temperature, top_p, max_new_tokens, system prompt, compare) and a
`Conversation`, each model's turns kept until reset, its oldest exchanges forgotten once they no
longer fit the model's context.

Runs in the CLI's process (and in the app's chat child, chat_server.py). Never imports textual; torch,
transformers and peft only once a run folder has been checked.
"""

from __future__ import annotations

import contextlib
import json
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from smoltrain.config.load import load_config, stage_configs
from smoltrain.config.schema import ModelSection, QuantizationSection, RunConfig
from smoltrain.config.techniques import facts
from smoltrain.errors import ConfigError, ModelError
from smoltrain.pastrun import first_model
from smoltrain.rundir import RunDir, running_worker

Turn = dict[str, str]


# --- which model: the run folder only ------------------------------------------------------------


@dataclass(frozen=True)
class ChatTarget:
    """What a chat loads, found from the run folder without the ML stack."""

    cfg: RunConfig  # the stage's config: quantization, dtype, trust_remote_code
    final: Path  # the trained adapter (or, for a full fine-tune, the whole model)
    base: str  # the model the stage started from: what "base" answers come from
    label: str  # "tuned", or the stage's name

    @property
    def is_adapter(self) -> bool:
        return (self.final / "adapter_config.json").is_file()

    @property
    def description(self) -> str:
        return f"{self.base} + {self.final}" if self.is_adapter else f"{self.final} (a full fine-tune of {self.base})"


def find_model(run_dir: Path, stage: str | None = None) -> ChatTarget:
    """The trained model of a run (or of one pipeline stage) and its base; a user error if there is none."""
    run = RunDir(run_dir)
    if not run.is_run():
        raise _not_a_run(run_dir)
    cfg = load_config(run.config)
    stages = stage_configs(cfg, str(run.config))
    names = [name for name, _ in stages]
    pipeline = bool(cfg.stages)
    if stage is not None and not pipeline and stage != names[0]:
        raise ConfigError(f"--stage {stage}: {run_dir} is a single-stage run ({names[0]}), not a pipeline",
                          hint="leave --stage out")  # fmt: skip
    if stage is not None and stage not in names:
        raise ConfigError(f"--stage {stage}: {run_dir} has no stage of that name", hint=f"its stages: {', '.join(names)}")
    index = names.index(stage) if stage is not None and pipeline else len(stages) - 1
    name, stage_cfg = stages[index]
    policies = [n for n, c in stages if facts(c.train.technique).policy]
    if not facts(stage_cfg.train.technique).policy:
        where = f"stage {name} of {run_dir}" if pipeline else str(run_dir)
        hint = (f"chat with a policy stage instead: --stage {policies[-1]}" if policies
                else "use it to score answers: as a GRPO reward (reward_model, with this run's folder)")  # fmt: skip
        raise ModelError(f"{where} trained a reward model: it scores answers and does not chat", hint=hint)
    final = run.result(stage if pipeline else None)
    if not (final / "adapter_config.json").is_file() and not (final / "config.json").is_file():
        raise _nothing_trained(run, final, [n for n in policies if run.stage(n).final.is_dir()] if pipeline else [])
    base = _recorded_base(final, run) or _starting_model(run, stages, index)
    return ChatTarget(stage_cfg, final, base, label=stage if stage and pipeline else "tuned")


def _not_a_run(run_dir: Path) -> ConfigError:
    if not run_dir.exists():
        return ConfigError(f"{run_dir}: no such folder", hint="give a run's folder, e.g. runs/<name> (ls runs)")
    # A run's final/ (or a stage's) given for the run: its run folder is a level or three up.
    for up in (run_dir.parent, run_dir.parent.parent.parent):
        if RunDir(up).is_run():
            return ConfigError(f"{run_dir}: not a run folder (no config.toml), but inside the run {up}",
                               hint=f"give the run's folder: smoltrain chat {up}")  # fmt: skip
    return ConfigError(f"{run_dir}: not a run folder (no config.toml)",
                       hint="give the folder a run writes, e.g. runs/<name> (ls runs)")  # fmt: skip


def _nothing_trained(run: RunDir, final: Path, finished: list[str]) -> ModelError:
    pid = running_worker(run.root)
    if pid is not None:
        return ModelError(f"{run.root} is still training (worker pid {pid}): no trained model in {final} yet",
                          hint="chat when it has finished; final/ is written at its end")  # fmt: skip
    hint = f"continue the run with: smoltrain resume {run.root}"
    if finished:
        hint += f"; or chat with a finished stage: --stage {finished[-1]}"
    return ModelError(f"{run.root}: no trained model ({final} is missing): the run stopped before it saved one", hint=hint)


def _recorded_base(final: Path, run: RunDir) -> str:
    """adapter_config.json's base; a merged/ of this run's stages found again if the run folder moved."""
    try:
        base = json.loads((final / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError, AttributeError):
        return ""
    if not isinstance(base, str):
        return ""
    parts = Path(base).parts
    if not Path(base).exists() and len(parts) >= 3 and parts[-3] == "stages" and parts[-1] == "merged":
        moved = run.stage(parts[-2]).merged
        if moved.is_dir():
            return str(moved)
    return base


def _starting_model(run: RunDir, stages: list[tuple[str, RunConfig]], index: int) -> str:
    """What stage `index` started from: the merged result of the last policy stage before it, or the config's model."""
    for name, cfg in reversed(stages[:index]):
        if facts(cfg.train.technique).policy:
            return str(run.stage(name).merged)
    return first_model(run, stages[0][1].model.name_or_path)


# --- loading: one copy of the weights -------------------------------------------------------------


@dataclass
class ChatModel:
    """A loaded chat: the tuned model, and its base (its adapter switched off) for --compare."""

    target: ChatTarget
    model: Any  # a peft.PeftModel (or a full fine-tune's model)
    tokenizer: Any
    device: str
    load_base: Callable[[], Any] | None = None  # a full fine-tune's base, loaded on first use
    _base: Any = None
    _template: Any = field(default=None, repr=False)

    @property
    def has_template(self) -> bool:
        from smoltrain.engine.data.chat_template import has_chat_template

        return has_chat_template(self.tokenizer)

    @property
    def context_limit(self) -> int | None:
        limit = getattr(self.model.config, "max_position_embeddings", None)
        return limit if isinstance(limit, int) else None

    def fit(self, turns: list[Turn]) -> list[Turn]:
        """The turns as the chat template takes them (a system turn folded where it refuses one)."""
        from smoltrain.engine.data.chat_template import ChatTemplate

        self._template = self._template or ChatTemplate(self.tokenizer)
        return self._template.fit(turns, generation_prompt=True)[0]

    def answer(self, which: str, prompt: list[Turn] | str, settings: ChatSettings,
               on_text: Callable[[str], None] | None = None) -> str:  # fmt: skip
        """One answer by "base" or "tuned", streamed to `on_text`."""
        from smoltrain.engine.generate import GenerationSettings, generate

        # float(): transformers refuses an int temperature (a JSON request's 1), "strictly positive float"
        gen = GenerationSettings(max_new_tokens=int(settings.max_new_tokens), temperature=float(settings.temperature),
                                 top_p=float(settings.top_p))  # fmt: skip
        if which == "tuned":
            return generate(self.model, self.tokenizer, prompt, gen, on_text=on_text)
        if self.load_base is None:
            with self.model.disable_adapter():
                return generate(self.model, self.tokenizer, prompt, gen, on_text=on_text)
        self._base = self._base if self._base is not None else self.load_base()
        return generate(self._base, self.tokenizer, prompt, gen, on_text=on_text)


def load_model(target: ChatTarget) -> ChatModel:
    """The tuned model on its base, as `target` says, with the base's tokenizer (what training used)."""
    from smoltrain.engine.model import load_tokenizer, resolve_device

    cfg = target.cfg
    device = resolve_device()
    same = target.base == cfg.model.name_or_path
    section = cfg.model.model_copy(update={"name_or_path": target.base, "revision": cfg.model.revision if same else None})
    try:
        tokenizer = load_tokenizer(section)
    except ModelError as exc:
        raise ModelError(f"the base model of {target.final}: {exc.message}", hint=exc.hint,
                         needs_network=exc.needs_network) from None  # fmt: skip
    def load_base() -> Any:
        with quiet_libraries():
            return _load_weights(target.base, cfg.model, cfg.quantization, device, section.revision)

    if not target.is_adapter:
        with quiet_libraries():
            model = _load_weights(str(target.final), cfg.model, cfg.quantization, device, revision=None)
        return ChatModel(target, model, tokenizer, device, load_base=load_base)
    with quiet_libraries():
        from peft import PeftModel

        model = _load_weights(target.base, cfg.model, cfg.quantization, device, section.revision)
        try:
            model = PeftModel.from_pretrained(model, str(target.final))
        except (OSError, ValueError) as exc:
            raise ModelError(f"{target.final}: cannot load the adapter ({_first_line(exc)})",
                             hint="it may have been cut off while saving: smoltrain resume the run") from None  # fmt: skip
    model.eval()
    return ChatModel(target, model, tokenizer, device)


def load_plain_model(section: ModelSection, quantization: QuantizationSection | None = None) -> tuple[Any, Any]:
    """A model with no run behind it (a hub id or a folder): its weights and tokenizer, loaded as a chat's base is."""
    from smoltrain.engine.model import load_tokenizer, resolve_device

    tokenizer = load_tokenizer(section)
    with quiet_libraries():
        model = _load_weights(section.name_or_path, section, quantization or QuantizationSection(mode="none"),
                              resolve_device(), section.revision)  # fmt: skip
    return model, tokenizer


def _load_weights(name: str, section: ModelSection, quantization: QuantizationSection, device: str,
                  revision: str | None) -> Any:  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from smoltrain.engine.data.load import (
        hub_offline_context,
        hub_unreachable,
        looks_like_path,
    )
    from smoltrain.engine.model import resolve_dtype

    # CPU: float32 (half-precision matmuls there are slow and some ops missing; 4-bit is for memory).
    dtype = resolve_dtype(section.dtype, device) if device == "cuda" else torch.float32
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": section.trust_remote_code, "dtype": dtype,
                              "device_map": {"": 0} if device == "cuda" else {"": "cpu"}}  # fmt: skip
    if device == "cuda" and quantization.mode == "4bit":
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=quantization.quant_type,
            bnb_4bit_use_double_quant=quantization.double_quant, bnb_4bit_compute_dtype=dtype,
        )  # fmt: skip
    try:
        with hub_offline_context(name):
            return AutoModelForCausalLM.from_pretrained(name, **kwargs).eval()
    except (OSError, ValueError) as exc:
        if hub_unreachable(name) and not looks_like_path(name):
            raise ModelError(f"{name}: its weights are not in the local Hugging Face cache, and the hub cannot be reached",
                             hint="connect to the network once to download them (`hf download ID`)", needs_network=True) from None  # fmt: skip
        raise ModelError(f"{name}: cannot load the model ({_first_line(exc)})",
                         hint="the folder needs a whole model as save_pretrained writes it") from None  # fmt: skip


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Loading prints progress bars and deprecation notes meant for library developers: keep the chat clean."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    levels = {name: logging.getLogger(name).level for name in ("transformers", "peft", "bitsandbytes")}
    for name in levels:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


# --- settings and the conversation -----------------------------------------------------------------


@dataclass
class ChatSettings:
    temperature: float = 0.7
    top_p: float = 0.9
    max_new_tokens: int = 256
    system: str | None = None
    compare: bool = False

    def check(self, flags: bool = True) -> None:
        """ConfigError naming the setting (as a flag, or as a chat command) that is out of range."""
        name = (lambda n: f"--{n.replace('_', '-')}") if flags else (lambda n: f"/{n}")
        if not self.temperature >= 0:
            raise ConfigError(f"{name('temperature')} {self.temperature:g}: must be 0 or more", hint="0 answers greedily")
        if not 0 < self.top_p <= 1:
            raise ConfigError(f"{name('top_p')} {self.top_p:g}: must be above 0 and at most 1", hint="0.9 is usual")
        if self.max_new_tokens < 1:
            raise ConfigError(f"{name('max_new_tokens')} {self.max_new_tokens}: must be 1 or more", hint="256 is usual")

    def describe(self) -> str:
        said = f"temperature {self.temperature:g}, top_p {self.top_p:g}, max_new_tokens {self.max_new_tokens}"
        return said + (f", system {self.system!r}" if self.system else "") + (", compare on" if self.compare else "")


class Conversation:
    """Each model's turns so far (base and tuned keep their own), and the prompt for the next answer."""

    def __init__(self, chat: ChatModel, settings: ChatSettings) -> None:
        self.chat, self.settings = chat, settings
        self.history: dict[str, list[Turn]] = {"base": [], "tuned": []}
        self.forgotten = 0

    def prompt(self, which: str, text: str) -> list[Turn] | str:
        """The turns to answer; a model without a chat template gets the text alone (it has no turns).
        The oldest exchanges are forgotten (counted in `forgotten`) once the prompt and the longest
        answer would not fit the model's context."""
        if not self.chat.has_template:
            return text
        from smoltrain.engine.generate import prompt_ids

        system = [{"role": "system", "content": self.settings.system}] if self.settings.system else []
        while True:
            turns = self.chat.fit([*system, *self.history[which], {"role": "user", "content": text}])
            limit = self.chat.context_limit
            if not self.history[which] or limit is None:
                return turns
            # Room for the longest answer, or for half the context when that asks for more than there is.
            if len(prompt_ids(self.chat.tokenizer, turns)) + min(self.settings.max_new_tokens, limit // 2) <= limit:
                return turns
            del self.history[which][:2]
            self.forgotten += 1

    def add(self, which: str, text: str, answer: str) -> None:
        self.history[which] += [{"role": "user", "content": text}, {"role": "assistant", "content": answer}]

    def reset(self, which: str | None = None) -> None:
        for name in [which] if which else list(self.history):
            self.history[name] = []
