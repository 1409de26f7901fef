"""`smoltrain export RUN_DIR --to merged|gguf|ollama`: a run's trained model, ready for other tools.

    merged   the adapter merged into a 16-bit copy of its base (float32 only for a float32 base), safetensors +
             tokenizer + chat template + a generation_config that stops at the end of turn: transformers, vLLM
             (engine/model.py's merge_adapter)
    gguf     one GGUF file from that, by llama.cpp's own converter: llama.cpp, LM Studio (to_gguf.py)
    ollama   the GGUF and a Modelfile whose TEMPLATE and stops reproduce the trained chat format (modelfile.py)

Everything is checked before anything is written: the run has a trained model (source.py), its base
loads offline, the quant type has its tool, the chat template has a form Ollama can express, and the
disk has room for what the export needs (said up front, with the free space). An export is written
into a temporary folder beside its target and renamed into place at the end, so an interrupted export
leaves the previous one intact and never a half one; gguf and ollama reuse a merged (or GGUF) export
of the same adapter files, else merge into a temporary folder that goes away afterwards.

Never imports textual; torch and transformers only once the checks that need no model have passed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smoltrain import rundir
from smoltrain.engine.export.source import (
    ExportSource,
    check_target,
    find_source,
    reusable,
    write_record,
)
from smoltrain.engine.export.to_gguf import (
    GgufPlan,
    convert,
    gguf_bytes,
    gguf_facts,
    plan_gguf,
)
from smoltrain.errors import ConfigError, DiskFullError, ModelError

if TYPE_CHECKING:  # modelfile.py loads the chat template prober (and the data package): only for --to ollama
    from smoltrain.engine.export.modelfile import TurnFormat

DEFAULT_QUANT = "f16"
_MARGIN_BYTES = 32 * 2**20  # tokenizer files, metadata, rounding


@dataclass
class _Export:
    """One export, checked and planned: what from, where to, how, and what it reuses."""

    source: ExportSource
    to: str
    target: Path
    plan: GgufPlan | None  # for gguf and ollama
    dtype: Any  # the merge's torch dtype
    why: str  # why that dtype
    tokenizer: Any  # the trained tokenizer
    form: TurnFormat | None  # for ollama: the chat format its TEMPLATE reproduces
    merged: dict[str, Any] | None  # a merged export of the same files, to convert from
    gguf: dict[str, Any] | None  # a GGUF export of the same files and type, for ollama
    params: int  # the base's parameter count, for the disk estimate

    @property
    def dtype_name(self) -> str:
        return str(self.dtype).removeprefix("torch.")


def export_main(run_dir: Path, *, to: str, stage: str | None, out: Path | None, quant: str,
                llama_cpp: Path | None) -> int:  # fmt: skip
    source, plan, target = _first_checks(run_dir, to, stage, out, quant.lower(), llama_cpp)
    with _quiet_libraries():
        return _export(_prepare(source, to, plan, target))


def _export(job: _Export) -> int:
    stage = job.source.stage
    need, free = _space(job)
    print(f"export {_shown(job.source.run.root)}{f' stage {stage}' if stage else ''} -> {_shown(job.target)}", flush=True)
    print(f"  model: {_shown(job.source.adapter)} ({job.source.cfg.train.technique}, "
          f"{'full fine-tune' if job.source.full_model else 'LoRA adapter'}) on {job.source.base}", flush=True)
    print(f"  dtype: {job.dtype_name} ({job.why})", flush=True)
    print(f"  disk:  needs about {rundir.format_bytes(need)}, {rundir.format_bytes(free)} free", flush=True)
    if free < need:
        raise DiskFullError(f"not enough disk space for the export: it needs about {rundir.format_bytes(need)} and the "
                            f"disk holding {_shown(job.target.parent)} has {rundir.format_bytes(free)} free",
                            hint="free some space, or give --out a folder on a larger disk")  # fmt: skip
    try:
        with _staging(job.target) as work:
            _write(job, work)
    except Exception as exc:
        if rundir.is_disk_full(exc, job.target.parent):
            raise DiskFullError(f"the disk holding {_shown(job.target)} filled up during the export "
                                f"({rundir.format_bytes(rundir.free_bytes(job.target.parent))} free); nothing was kept",
                                hint="free some space, or give --out a folder on a larger disk") from None  # fmt: skip
        raise
    _say_done(job)
    return 0


def _first_checks(run_dir: Path, to: str, stage: str | None, out: Path | None, quant: str,
                  llama_cpp: Path | None) -> tuple[ExportSource, GgufPlan | None, Path]:  # fmt: skip
    """The checks that need neither torch nor a model: the run, the stage, the type and its tools, the target."""
    source = find_source(run_dir, stage)
    if to == "merged" and (quant != DEFAULT_QUANT or llama_cpp is not None):
        raise ConfigError("--quant and --llama-cpp are for --to gguf and ollama: a merged export is safetensors",
                          hint="leave them out, or export --to gguf")  # fmt: skip
    if source.scores and to != "merged":
        raise ConfigError(f"{run_dir} trained a reward model, which scores text and does not chat: llama.cpp and "
                          "Ollama have no use for it", hint="export it with --to merged (a sequence classifier)")  # fmt: skip
    plan = plan_gguf(quant, llama_cpp) if to != "merged" else None
    target = (out or source.run.export_dir(to, source.stage)).expanduser().resolve()
    check_target(target)
    return source, plan, target


def _prepare(source: ExportSource, to: str, plan: GgufPlan | None, target: Path) -> _Export:
    """The checks that load the base's config and the tokenizer, and what the export will reuse."""
    from transformers import AutoTokenizer

    from smoltrain.engine.export.modelfile import turn_format
    from smoltrain.engine.model import load_base_config, merge_dtype

    base_config = load_base_config(source.base, source.revision, source.cfg.model.trust_remote_code, source.base_field)
    if getattr(base_config, "quantization_config", None):
        raise ModelError(f"{source.base_field} {source.base!r} is stored quantized: merging into it would round the "
                         "trained update away", hint="train on its 16-bit original (smoltrain quantizes it at load "
                         "with quantization.mode = '4bit'), then export")  # fmt: skip
    dtype, why = merge_dtype(source.cfg, base_config)
    tokenizer = AutoTokenizer.from_pretrained(str(source.adapter))
    job = _Export(source=source, to=to, target=target, plan=plan, dtype=dtype, why=why, tokenizer=tokenizer,
                  form=turn_format(tokenizer) if to == "ollama" else None, merged=None, gguf=None,
                  params=_param_count(base_config, source, dtype.itemsize))  # fmt: skip
    if to != "merged":
        job.merged = reusable(source.run.export_dir("merged", source.stage), source, "merged", dtype=job.dtype_name)
    if to == "ollama":
        assert plan is not None
        job.gguf = reusable(source.run.export_dir("gguf", source.stage), source, "gguf", quant=plan.quant, dtype=job.dtype_name)
    return job


def _space(job: _Export) -> tuple[int, int]:
    """(bytes the export will write, temporary files included; bytes free on the disk it writes to)."""
    params = job.params
    merged = params * job.dtype.itemsize + _MARGIN_BYTES
    if job.plan is None:
        need = merged
    else:
        need = gguf_bytes(params, job.plan.quant) + _MARGIN_BYTES
        if job.gguf is None:
            need += (0 if job.merged else merged) + (gguf_bytes(params, "f16") if job.plan.needs_quantize else 0)
    return need, rundir.free_bytes(job.target.parent)


def _write(job: _Export, work: Path) -> None:
    if job.plan is None:
        _merge(job.source, work, job.dtype)
        write_record(work, job.source.record("merged", dtype=job.dtype_name))
        return
    made = _gguf(job, work)
    if job.form is not None:
        _write_modelfile(job, work, made)
    write_record(work, job.source.record(job.to, dtype=job.dtype_name, quant=job.plan.quant, file=made.name))


def _merge(source: ExportSource, folder: Path, dtype: Any) -> None:
    from smoltrain.engine.model import merge_adapter

    started = time.monotonic()
    print("merging the adapter into the base on the CPU ..." if not source.full_model
          else "copying the fine-tuned model ...", flush=True)  # fmt: skip
    merge_adapter(source.merge_config(), source.adapter, folder, dtype=dtype)
    print(f"  done in {time.monotonic() - started:.1f} s", flush=True)


def _gguf(job: _Export, work: Path) -> Path:
    """Write the GGUF into `work` (linking a GGUF export for Ollama where one fits) and check what it says."""
    source, plan = job.source, job.plan
    assert plan is not None
    made = work / ("model.gguf" if job.to == "ollama" else f"{source.name}-{plan.quant}.gguf")
    if job.gguf is not None:
        earlier = source.run.export_dir("gguf", source.stage) / str(job.gguf["file"])
        print(f"reusing the GGUF export {_shown(earlier)} (same adapter files)", flush=True)
        _link_or_copy(earlier, made)
        return made
    with contextlib.ExitStack() as cleanup:
        if job.merged is not None:
            merged_dir = source.run.export_dir("merged", source.stage)
            print(f"reusing the merged export {_shown(merged_dir)} (same adapter files)", flush=True)
        else:
            merged_dir = Path(tempfile.mkdtemp(prefix=f".{job.target.name}.merging-", dir=job.target.parent))
            cleanup.callback(shutil.rmtree, merged_dir, ignore_errors=True)
            _merge(source, merged_dir, job.dtype)
        started = time.monotonic()
        print(f"converting to GGUF ({plan.quant}) with llama.cpp's convert_hf_to_gguf ({plan.converter_label})"
              f"{' and llama-quantize' if plan.needs_quantize else ''} ...", flush=True)  # fmt: skip
        notes = convert(plan, merged_dir, made, work, model_name=source.name, add_bos=adds_bos(job.tokenizer),
                        eot_id=end_of_turn_id(job.tokenizer), sixteen_bit="bf16" if job.dtype_name == "bfloat16" else "f16")  # fmt: skip
        for name in ("convert.log", "quantize.log"):
            (work / name).unlink(missing_ok=True)
        print(f"  done in {time.monotonic() - started:.1f} s: {made.name}, {rundir.format_bytes(made.stat().st_size)}", flush=True)
    for note in notes:
        print(f"  warning: {note}", flush=True)
    try:
        facts = gguf_facts(made)
    except ImportError:  # no gguf package (a llama.cpp checkout converted): nothing to read it back with
        return made
    for problem in gguf_problems(facts, job.tokenizer):
        print(f"  warning: {problem}", flush=True)
    return made


def gguf_problems(facts: dict[str, Any], tokenizer: Any) -> list[str]:
    """Where what llama.cpp reads from the GGUF differs from the trained tokenizer."""
    problems = []
    if facts["chat_template"] != _own_template(tokenizer):
        problems.append("the GGUF's chat template is not the trained tokenizer's")
    for name, want in (("eos", tokenizer.eos_token_id), ("bos", tokenizer.bos_token_id), ("eot", end_of_turn_id(tokenizer))):
        if want is not None and facts[name] != want:
            problems.append(f"the GGUF's {name} token id is {facts[name]}, the trained tokenizer's {want}")
    return problems


def adds_bos(tokenizer: Any) -> bool:
    """Does the trained tokenizer start plain text with BOS? The GGUF says the same to llama.cpp and Ollama."""
    bos = tokenizer.bos_token_id
    return bos is not None and list(tokenizer("a", add_special_tokens=True)["input_ids"][:1]) == [bos]


def end_of_turn_id(tokenizer: Any) -> int | None:
    """The id of the chat template's end-of-turn marker, where it is one token."""
    from smoltrain.engine.data.chat_template import ChatTemplate, has_chat_template

    if not has_chat_template(tokenizer):
        return None
    marker = ChatTemplate(tokenizer).end_of_turn
    ids = tokenizer.convert_tokens_to_ids(marker) if marker else None
    return ids if isinstance(ids, int) and ids != tokenizer.unk_token_id else None


def _write_modelfile(job: _Export, work: Path, made: Path) -> None:
    from smoltrain.engine.export.modelfile import modelfile

    assert job.form is not None
    form = job.form
    if adds_bos(job.tokenizer):  # the GGUF adds BOS itself (add_bos_token): the TEMPLATE must not add a second
        form = form.without_leading(job.tokenizer.bos_token)
    name = ollama_name(job.source.name)
    text = modelfile(form, made.name, made_from=f"{job.source.name} ({job.source.cfg.train.technique} run {job.source.run.root})",
                     create=f"ollama create {name} -f {job.target / 'Modelfile'}")  # fmt: skip
    (work / "Modelfile").write_text(text, encoding="utf-8")


def _say_done(job: _Export) -> None:
    target = job.target
    if job.to == "merged":
        auto = "AutoModelForSequenceClassification" if job.source.scores else "AutoModelForCausalLM"
        print(f"done: {_shown(target)}", flush=True)
        print(f'  load it: {auto}.from_pretrained("{_shown(target)}")'
              + ("" if job.source.scores else f"   or: vllm serve {_shown(target)}"), flush=True)  # fmt: skip
    elif job.to == "gguf":
        file = next(target.glob("*.gguf"))
        print(f"done: {_shown(file)}", flush=True)
        print(f"  run it: llama-cli -m {_shown(file)}   (or open it in LM Studio)", flush=True)
    else:
        name = ollama_name(job.source.name)
        print(f"done: {_shown(target)} (model.gguf and Modelfile)", flush=True)
        print(f"  make it an Ollama model:  ollama create {name} -f {_shown(target / 'Modelfile')}", flush=True)
        print(f"  then chat with it:        ollama run {name}", flush=True)


def ollama_name(name: str) -> str:
    """An Ollama model name (lowercase letters, digits, '.', '_', '-') for a run's name."""
    cleaned = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "._-") else "-" for ch in name.lower()).strip("-.")
    return cleaned or "smoltrain-model"


def _param_count(base_config: Any, source: ExportSource, itemsize: int) -> int:
    """The base's parameters: from its config (memory/shapes.py), else from the size of its weight files."""
    from smoltrain.memory.shapes import ModelShape

    try:
        return ModelShape.from_config(base_config.to_dict()).total_params
    except (ModelError, KeyError, TypeError, ValueError):  # a mixture of experts, an unusual config
        pass
    folder = Path(source.base).expanduser()
    if not folder.is_dir():
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(source.base, "config.json", revision=source.revision)
        folder = Path(cached).parent if isinstance(cached, str) else folder
    weights = sum(f.stat().st_size for f in folder.glob("*.safetensors")) if folder.is_dir() else 0
    if not weights:
        raise ModelError(f"{source.base_field} {source.base!r}: cannot tell its size (no config the memory model "
                         "reads, no weight files found)", hint="export from the machine that trained it")  # fmt: skip
    return weights // itemsize


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """The export's own lines only, for the terminal and the app's export pane: no progress bars, no load
    reports (a reward model's "score.weight MISSING" before its trained head loads), no bitsandbytes note
    about 4-bit kernels (nothing here is 4-bit). Restored afterwards, for callers in the same process."""
    from transformers.utils import logging as hf_logging

    bnb = logging.getLogger("bitsandbytes")
    saved = (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled(), bnb.level)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    bnb.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(saved[0])
        if saved[1]:
            hf_logging.enable_progress_bar()
        bnb.setLevel(saved[2])


@contextlib.contextmanager
def _staging(target: Path) -> Iterator[Path]:
    """A fresh folder beside `target` to write into, put in `target`'s place when the block succeeds."""
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    umask = os.umask(0o22)
    os.umask(umask)
    work.chmod(0o777 & ~umask)  # mkdtemp's folder is private; an export is an ordinary folder
    try:
        yield work
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    work.rename(target)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)  # the same disk: no second copy of a multi-gigabyte file
    except OSError:
        shutil.copyfile(source, target)


def _own_template(tokenizer: Any) -> Any:
    own = tokenizer.chat_template
    return own.get("default", next(iter(own.values()))) if isinstance(own, dict) else own


def _shown(path: Path) -> str:
    """`path` relative to the working folder where it is inside it, else absolute."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
