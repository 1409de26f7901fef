"""The family matrix: tiny random-weight copies of the model families hobbyists train, built at test time.

Each family is its published config.json (bench/model_configs/, shrunk to a few layers of width 64),
its real chat template (from TRL's package where TRL ships a copy, else the family's published
tokenizer_config.json, kept in templates/) and its real special tokens, on a small BPE vocabulary
trained here on the demo data. The tokenizer is of the family's kind: byte-level BPE (Llama-3, Qwen,
SmolLM) or SentencePiece-style with "▁" for spaces and byte fallback (Mistral, Gemma, Phi-3), and
adds a BOS token on plain encoding where the real one does. So everything that touches
tokenization, chat templates, model classes and special tokens meets what it meets on the real
models, in seconds and offline; only the vocabulary and the weights are not the real ones.

    from tests.families import FAMILIES, build_family
    folder = build_family("llama-3.2", tmp_dir)       # config.json, weights, tokenizer: a model folder

    python -m tests.families DIR [NAME ...]           # build them into DIR, e.g. to try `smoltrain data`
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "bench" / "model_configs"
OWN_TEMPLATES = Path(__file__).resolve().parent / "templates"
CORPUS_FILES = [ROOT / "assets" / "data" / name for name in ("sft.jsonl", "dpo.jsonl", "grpo.jsonl")]
VOCAB_SIZE = 700
WIDTH, LAYERS, HEADS, HEAD_DIM, FFN = 64, 2, 4, 16, 128


@dataclass(frozen=True)
class Family:
    name: str
    config: str  # folder under bench/model_configs
    template: str  # "trl:<name>" (a file of trl/chat_templates) or "own:<file>" (templates/ here)
    style: str  # "bytelevel" | "sentencepiece"
    eos: str
    specials: tuple[str, ...]  # special tokens, in id order from 0 (bos/eos/pad/unk among them)
    bos: str | None = None
    pad: str | None = None
    unk: str | None = None
    added: tuple[str, ...] = ()  # added tokens that are not special (Qwen3's <think>)
    adds_bos: bool = False  # plain encoding prepends BOS (the template then adds its own too)
    prefix_space: bool = True  # SentencePiece-style: a "▁" goes before the first word
    gen_eos: tuple[str, ...] = ()  # extra end tokens of generation_config (end of turn)
    end_of_turn: str = ""  # the token that closes an assistant turn (what the mask must include)
    system: str = "kept"  # what the template does with a system turn: kept, refused, dropped (single-turn rows)


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("llama-3.2", "llama-3.2-1b", "trl:llama3_2", "bytelevel", eos="<|eot_id|>", bos="<|begin_of_text|>",
               specials=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"),
               adds_bos=True, gen_eos=("<|end_of_text|>", "<|eom_id|>"), end_of_turn="<|eot_id|>"),
        Family("llama-3.1", "llama-3.1-8b", "trl:llama3_1", "bytelevel", eos="<|eot_id|>", bos="<|begin_of_text|>",
               specials=("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                         "<|eot_id|>", "<|eom_id|>", "<|python_tag|>"),
               adds_bos=True, gen_eos=("<|end_of_text|>", "<|eom_id|>"), end_of_turn="<|eot_id|>"),
        Family("qwen2.5", "qwen2.5-0.5b", "trl:qwen2_5", "bytelevel", eos="<|im_end|>", pad="<|endoftext|>",
               specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"), added=("<tool_call>", "</tool_call>"),
               gen_eos=("<|endoftext|>",), end_of_turn="<|im_end|>"),
        Family("qwen3", "qwen3-0.6b", "trl:qwen3", "bytelevel", eos="<|im_end|>", pad="<|endoftext|>",
               specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"),
               added=("<tool_call>", "</tool_call>", "<think>", "</think>"), gen_eos=("<|endoftext|>",), end_of_turn="<|im_end|>"),
        Family("gemma-2", "gemma-2-2b", "trl:gemma", "sentencepiece", eos="<eos>", bos="<bos>", pad="<pad>", unk="<unk>",
               specials=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
               adds_bos=True, prefix_space=False, gen_eos=("<end_of_turn>",), end_of_turn="<end_of_turn>", system="refused"),
        Family("gemma-3", "gemma-3-1b", "trl:gemma3", "sentencepiece", eos="<eos>", bos="<bos>", pad="<pad>", unk="<unk>",
               specials=("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>", "<start_of_image>"),
               adds_bos=True, prefix_space=False, gen_eos=("<end_of_turn>",), end_of_turn="<end_of_turn>"),
        Family("mistral-v0.3", "mistral-7b-v0.3", "own:mistral_v0_3.jinja", "sentencepiece", eos="</s>", bos="<s>",
               unk="<unk>",
               specials=("<unk>", "<s>", "</s>", "[INST]", "[/INST]", "[TOOL_CALLS]", "[AVAILABLE_TOOLS]",
                         "[/AVAILABLE_TOOLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]"),
               adds_bos=True, end_of_turn="</s>", system="dropped"),
        Family("phi-3", "phi-3-mini-4k", "trl:phi3", "sentencepiece", eos="<|endoftext|>", bos="<s>", pad="<|endoftext|>",
               unk="<unk>", specials=("<unk>", "<s>", "</s>", "<|endoftext|>", "<|assistant|>", "<|end|>", "<|system|>",
                                      "<|user|>"),
               gen_eos=("<|end|>",), end_of_turn="<|end|>"),
        Family("smollm2", "smollm2-135m", "own:smollm2.jinja", "bytelevel", eos="<|im_end|>", bos="<|im_start|>",
               pad="<|im_end|>", specials=("<|endoftext|>", "<|im_start|>", "<|im_end|>"), end_of_turn="<|im_end|>"),
    )
}


def chat_template(family: Family) -> str:
    kind, name = family.template.split(":", 1)
    if kind == "trl":
        import trl

        return (Path(trl.__file__).parent / "chat_templates" / f"{name}.jinja").read_text(encoding="utf-8")
    return (OWN_TEMPLATES / name).read_text(encoding="utf-8")


def _corpus() -> list[str]:
    texts: list[str] = []
    for path in CORPUS_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            texts.extend(_strings(json.loads(line)))
    return texts


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def build_tokenizer(family: Family) -> Any:
    """A fast tokenizer of the family's kind, with its special tokens at ids 0.. and its chat template."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = list(family.specials)
    if family.style == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())  # fmt: skip
        tok.train_from_iterator(_corpus(), trainer)
    else:
        # SentencePiece-style BPE: spaces become "▁", unknown characters fall back to <0xNN> byte tokens.
        scheme = "first" if family.prefix_space else "never"
        # Newlines stay tokens of their own, as in the real vocabularies (where they are byte or "\n" pieces).
        pre = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(r"\n+"), behavior="isolated"),
                                       pre_tokenizers.Metaspace(replacement="▁", prepend_scheme=scheme, split=True)])
        draft = Tokenizer(models.BPE(unk_token=family.unk))
        draft.pre_tokenizer = pre
        draft.train_from_iterator(_corpus(), trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=specials,
                                                                 show_progress=False))  # fmt: skip
        trained = json.loads(draft.to_str())["model"]
        vocab = dict(trained["vocab"])
        for byte in range(256):
            vocab.setdefault(f"<0x{byte:02X}>", len(vocab))
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in trained["merges"]]
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=family.unk, byte_fallback=True))
        tok.pre_tokenizer = pre
        tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()]
                                        + ([decoders.Strip(" ", 1, 0)] if family.prefix_space else []))  # fmt: skip
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in family.added])
    if family.adds_bos and family.bos:
        bos_id = tok.token_to_id(family.bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{family.bos} $A", pair=f"{family.bos} $A {family.bos} $B", special_tokens=[(family.bos, bos_id)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=family.bos, eos_token=family.eos, pad_token=family.pad, unk_token=family.unk,
        model_max_length=4096, clean_up_tokenization_spaces=False,
    )  # fmt: skip
    fast.chat_template = chat_template(family)
    return fast


def _shrunk_config(family: Family, tokenizer: Any) -> Any:
    from transformers import AutoConfig

    raw = json.loads((CONFIGS / family.config / "config.json").read_text())
    heads = HEADS
    real_kv = raw.get("num_key_value_heads", raw["num_attention_heads"])
    # Keep the kind of attention: multi-head, grouped-query, or a single KV head (Gemma-3-1B).
    kv = heads if real_kv == raw["num_attention_heads"] else 1 if real_kv == 1 else 2
    raw.update(hidden_size=WIDTH, intermediate_size=FFN, num_hidden_layers=LAYERS, num_attention_heads=heads,
               num_key_value_heads=kv, head_dim=HEAD_DIM, vocab_size=len(tokenizer))  # fmt: skip
    if "query_pre_attn_scalar" in raw:
        raw["query_pre_attn_scalar"] = HEAD_DIM
    if raw.get("sliding_window"):
        raw["sliding_window"] = 32  # shorter than the test rows, so the sliding layers really slide
    raw.pop("layer_types", None)
    if raw.get("sliding_window_pattern"):
        raw["sliding_window_pattern"] = 2  # one sliding and one full layer, as in the real model's mix
    ids = {name: tokenizer.convert_tokens_to_ids(tok) if tok else None
           for name, tok in (("bos", family.bos), ("pad", family.pad))}  # fmt: skip
    raw.update(bos_token_id=ids["bos"], pad_token_id=ids["pad"], eos_token_id=tokenizer.convert_tokens_to_ids(family.eos))
    raw.pop("_name_or_path", None)
    raw.pop("transformers_version", None)
    model_type = raw.pop("model_type")
    return AutoConfig.for_model(model_type, **raw)


def build_family(name: str, out_dir: Path, seed: int = 0) -> Path:
    """Write the tiny `name` model (config, random weights, tokenizer, generation config) to out_dir/name."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    family = FAMILIES[name]
    folder = Path(out_dir) / name
    if (folder / "model.safetensors").exists():
        return folder
    tokenizer = build_tokenizer(family)
    config = _shrunk_config(family, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    eos = [tokenizer.convert_tokens_to_ids(t) for t in (family.eos, *family.gen_eos)]
    GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=eos if len(eos) > 1 else eos[0],
                     pad_token_id=config.pad_token_id).save_pretrained(folder)  # fmt: skip
    return folder

