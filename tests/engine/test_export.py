"""`smoltrain export`: each format read back against what it was made from.

One adapter, made without training (the tiny model with a rank-8 LoRA whose B matrices are random, so
the merge has something to fold in), sits in a run folder that create_run_dir made from the demo preset;
it is exported once to each format, and each test reads one export back: the merged model's logits
against base + adapter, every GGUF tensor against the merged weights, the Modelfile's TEMPLATE
(rendered by a small Go text/template renderer below) against the chat template. Two more families
(Qwen2.5, Gemma-2) go through merged + GGUF too, and the Ollama template is checked on the family
matrix's chat templates. Bad inputs each exit 2 with one line.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from smoltrain import cli, rundir, runner
from smoltrain.config.load import load_config
from smoltrain.config.presets import PROJECT_ROOT
from smoltrain.engine.export import adds_bos, end_of_turn_id, export_main
from smoltrain.engine.export.modelfile import turn_format
from tests.conftest import TINY_MODEL

DEMO_SFT = PROJECT_ROOT / "presets" / "demo-sft.toml"
PROMPTS = ["The cat sat on", "What is 2 + 3?", "Zorbles live in the"]


def make_run(root: Path, name: str, base: Path, seed: int = 0) -> Path:
    """A run folder (config.toml from the demo preset) whose final/ holds a LoRA on `base` with random B."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = load_config(DEMO_SFT, [f"output_dir={root}", f"model.name_or_path={base}"])
    run_dir = runner.create_run_dir(cfg, name)
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    for param_name, param in peft.named_parameters():
        if "lora_B" in param_name:
            param.data = torch.randn(param.shape, generator=generator) * 0.05
    peft.save_pretrained(run_dir / "final")
    AutoTokenizer.from_pretrained(str(base)).save_pretrained(run_dir / "final")
    return run_dir


def export(run_dir: Path, to: str, **kwargs: Any) -> int:
    return export_main(run_dir, to=to, stage=kwargs.get("stage"), out=kwargs.get("out"),
                       quant=kwargs.get("quant", "f16"), llama_cpp=kwargs.get("llama_cpp"))  # fmt: skip


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """The tiny model's run, exported to all three formats (gguf reuses the merged export, ollama the GGUF)."""
    run_dir = make_run(tmp_path_factory.mktemp("export") / "runs", "exp", TINY_MODEL)
    for to in ("merged", "gguf", "ollama"):
        assert export(run_dir, to) == 0
    return run_dir


def tokenizer_of(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


# --- merged ------------------------------------------------------------------------------------------


def test_merged_model_is_base_plus_adapter(tiny_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, GenerationConfig

    merged_dir = tiny_run / "exports" / "merged"
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir))
    assert merged.dtype == torch.float32, "a float32 base stays float32"
    base = AutoModelForCausalLM.from_pretrained(str(TINY_MODEL), dtype=torch.float32)
    plain = AutoModelForCausalLM.from_pretrained(str(TINY_MODEL), dtype=torch.float32)
    with_adapter = PeftModel.from_pretrained(base, str(tiny_run / "final"))
    tokenizer = tokenizer_of(merged_dir)
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            want, got, before = with_adapter(ids).logits, merged(ids).logits, plain(ids).logits
        assert (want - before).abs().max() > 1e-2, "the adapter changes the model (else the check proves nothing)"
        torch.testing.assert_close(got, want, atol=1e-3, rtol=0)

    assert tokenizer.chat_template == tokenizer_of(tiny_run / "final").chat_template
    stops = GenerationConfig.from_pretrained(str(merged_dir)).eos_token_id
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in (stops if isinstance(stops, list) else [stops])
    record = json.loads((merged_dir / "smoltrain-export.json").read_text())
    assert record["format"] == "merged" and record["dtype"] == "float32"


# --- GGUF --------------------------------------------------------------------------------------------


def _llama_permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's q/k row order for its rotary embedding (convert_hf_to_gguf's LlamaModel.permute)."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def test_gguf_holds_every_merged_tensor_and_the_trained_tokenizer(tiny_run):
    import gguf
    from safetensors.numpy import load_file

    merged_dir = tiny_run / "exports" / "merged"
    weights = load_file(str(merged_dir / "model.safetensors"))
    config = json.loads((merged_dir / "config.json").read_text())
    reader = gguf.GGUFReader(next((tiny_run / "exports" / "gguf").glob("*.gguf")))
    tensors = {t.name: t for t in reader.tensors}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    mapped = {names.get_name(name, try_suffixes=(".weight", ".bias")): name for name in weights}
    assert set(mapped) == set(tensors), "every merged tensor, and nothing else"
    for gguf_name, hf_name in mapped.items():
        want = weights[hf_name]
        if hf_name.endswith("q_proj.weight"):
            want = _llama_permute(want, config["num_attention_heads"])
        elif hf_name.endswith("k_proj.weight"):
            want = _llama_permute(want, config["num_key_value_heads"])
        got = np.asarray(tensors[gguf_name].data, dtype=np.float32)
        assert got.shape == want.shape, gguf_name
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5, err_msg=gguf_name)  # f16 keeps ~3 digits

    tokenizer = tokenizer_of(tiny_run / "final")
    fields = {key: field.contents() for key, field in reader.fields.items() if key.startswith("tokenizer.")}
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.eot_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert fields["tokenizer.ggml.add_bos_token"] is False  # the tiny tokenizer adds no BOS
    assert fields["tokenizer.ggml.tokens"] == tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))


def test_llama_cpp_answers_as_transformers_does(tiny_run, tmp_path):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (optional: pip install llama-cpp-python)")
    from transformers import AutoModelForCausalLM

    from smoltrain.engine.generate import prompt_ids

    out = tmp_path / "f32"
    assert export(tiny_run, "gguf", quant="f32", out=out) == 0  # f32: no rounding between the two
    llm = llama_cpp.Llama(model_path=str(next(out.glob("*.gguf"))), n_ctx=256, verbose=False)
    merged_dir = tiny_run / "exports" / "merged"
    model = AutoModelForCausalLM.from_pretrained(str(merged_dir))
    tokenizer = tokenizer_of(merged_dir)
    for prompt in PROMPTS:
        ids = prompt_ids(tokenizer, prompt)  # the same ids to both: llama.cpp's own text splitting may differ
        want = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False)[0, len(ids) :].tolist()
        got = []
        for token in llm.generate(ids, temp=0.0, top_k=1, repeat_penalty=1.0, reset=True):
            got.append(token)
            if len(got) == len(want):
                break
        assert got == want, prompt


# --- Ollama ------------------------------------------------------------------------------------------


def test_modelfile_template_renders_the_chat_template(tiny_run):
    folder = tiny_run / "exports" / "ollama"
    text = (folder / "Modelfile").read_text()
    assert re.search(r"^FROM \./model\.gguf$", text, re.MULTILINE) and (folder / "model.gguf").is_file()
    template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.DOTALL | re.MULTILINE).group(1)
    assert re.findall(r'^PARAMETER stop "(.*)"$', text, re.MULTILINE) == ["<|im_end|>"]
    tokenizer = tokenizer_of(tiny_run / "final")
    for turns in CONVERSATIONS:
        want = tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        assert render_ollama(template, turns) == want


CONVERSATIONS = [
    [{"role": "user", "content": "Hi there."}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2 + 2?"}],
    [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4."},
     {"role": "user", "content": "And\ntimes 3?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another \"one\", please."}],
]  # fmt: skip


@pytest.mark.parametrize("family", ["llama-3.2", "qwen2.5", "gemma-2", "mistral-v0.3", "phi-3", "smollm2"])
def test_ollama_template_reproduces_each_familys_format(family):
    """The Go template renders every probe conversation as the family's own chat template does, with the
    system turn folded where training folds it, and without the BOS the GGUF adds itself."""
    from smoltrain.engine.data.chat_template import ChatTemplate
    from tests.families import FAMILIES, build_tokenizer

    tokenizer = build_tokenizer(FAMILIES[family])
    form = turn_format(tokenizer)
    if adds_bos(tokenizer):
        form = form.without_leading(tokenizer.bos_token)
    assert FAMILIES[family].end_of_turn in form.stops
    template = ChatTemplate(tokenizer)
    for turns in CONVERSATIONS:
        fitted, _ = template.fit([dict(t) for t in turns], generation_prompt=True)
        want = template.render(fitted, generation_prompt=True)
        if adds_bos(tokenizer):
            want = want.removeprefix(tokenizer.bos_token)
        assert render_ollama(form.go_template(), turns) == want


# --- other families: merged + GGUF --------------------------------------------------------------------


# Gemma-2: SentencePiece, a BOS, a template that refuses system turns (the demo model is byte-level BPE).
@pytest.mark.parametrize("family", ["gemma-2"])
def test_other_families_export_to_gguf(family, family_model, tmp_path):
    import gguf
    from transformers import GenerationConfig

    run_dir = make_run(tmp_path / "runs", family.replace(".", ""), family_model(family))
    assert export(run_dir, "merged") == 0 and export(run_dir, "gguf") == 0
    tokenizer = tokenizer_of(run_dir / "final")
    merged_dir = run_dir / "exports" / "merged"
    eot = end_of_turn_id(tokenizer)
    assert eot is not None and eot in GenerationConfig.from_pretrained(str(merged_dir)).eos_token_id
    assert tokenizer_of(merged_dir).chat_template == tokenizer.chat_template

    reader = gguf.GGUFReader(next((run_dir / "exports" / "gguf").glob("*.gguf")))
    fields = {key: field.contents() for key, field in reader.fields.items() if key.startswith("tokenizer.")}
    assert fields["tokenizer.chat_template"] == tokenizer.chat_template
    assert fields["tokenizer.ggml.eos_token_id"] == tokenizer.eos_token_id
    assert fields["tokenizer.ggml.eot_token_id"] == eot
    assert fields.get("tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id or tokenizer.bos_token_id is None
    assert fields["tokenizer.ggml.add_bos_token"] is adds_bos(tokenizer)
    tokens = fields["tokenizer.ggml.tokens"]
    assert len(tokens) == len(tokenizer)
    for token in tokenizer.all_special_tokens:
        assert tokens[tokenizer.convert_tokens_to_ids(token)] == token


# --- bad input: exit 2, one line -----------------------------------------------------------------------


def _one_line_error(stderr: str, *words: str) -> None:
    lines = stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and all(w in lines[0] for w in words), stderr
    assert len(lines) <= 2 and "Traceback" not in stderr, stderr


def test_run_without_a_trained_model_exits_2(tmp_path, capsys):
    cfg = load_config(DEMO_SFT, [f"output_dir={tmp_path}"])
    run_dir = runner.create_run_dir(cfg, "stopped")
    assert cli.main(["export", str(run_dir), "--to", "gguf"]) == 2
    _one_line_error(capsys.readouterr().err, "nothing trained", "final/")


def test_k_quant_without_llama_cpp_exits_2(tiny_run, capsys):
    assert cli.main(["export", str(tiny_run), "--to", "gguf", "--quant", "q4_k_m"]) == 2
    _one_line_error(capsys.readouterr().err, "q4_k_m", "llama-quantize")


def test_too_little_disk_exits_2_and_writes_nothing(tiny_run, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(rundir, "free_bytes", lambda folder: 1000)
    assert cli.main(["export", str(tiny_run), "--to", "merged", "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys.readouterr().err, "not enough disk space", "1000 B")
    assert list(tmp_path.iterdir()) == []


def test_base_model_not_available_offline_exits_2(tiny_run, tmp_path):
    run_dir = tmp_path / "moved"
    shutil.copytree(tiny_run, run_dir, ignore=shutil.ignore_patterns("exports"))
    adapter_config = run_dir / "final" / "adapter_config.json"
    config = json.loads(adapter_config.read_text())
    adapter_config.write_text(json.dumps({**config, "base_model_name_or_path": "smoltrain-tests/not-in-any-cache"}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the hub libraries read it at import: a child process
    done = subprocess.run([sys.executable, "-m", "smoltrain.cli", "export", str(run_dir), "--to", "merged"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2, done.stderr
    _one_line_error(done.stderr, "smoltrain-tests/not-in-any-cache", "not in the local Hugging Face cache")


# --- a Go text/template renderer for the constructs the TEMPLATE uses -----------------------------------------


def render_ollama(template: str, turns: list[dict[str, str]]) -> str:
    """What Ollama renders for `turns`: consecutive turns of one role merged, the system turns' text in
    .System and still in .Messages (ollama's template.collate)."""
    messages: list[dict[str, str]] = []
    for turn in turns:
        if messages and messages[-1]["Role"] == turn["role"]:
            messages[-1]["Content"] += "\n\n" + turn["content"]
        else:
            messages.append({"Role": turn["role"], "Content": turn["content"]})
    system = "\n\n".join(t["content"] for t in turns if t["role"] == "system")
    return GoTemplate(template).render({"System": system, "Messages": messages})


class GoTemplate:
    """text/template's actions as the TEMPLATE uses them: {{- -}} trimming, string literals, .Field and
    $.Field, variables (:= and =, scoped to their block), if / else if / else, range $i, $_ := X, and the
    functions eq, not, and, len, slice. Anything else is an error, so the TEMPLATE cannot drift past it."""

    def __init__(self, text: str) -> None:
        self.items = self._lex(text)

    @staticmethod
    def _lex(text: str) -> list[tuple[str, str]]:
        """[("text", ...), ("action", ...)] with the trimming done: "{{- " eats the white space before, " -}}" after."""
        items: list[tuple[str, str]] = []
        pos, space = 0, " \t\r\n"
        while (start := text.find("{{", pos)) >= 0:
            end = start + 2
            while not text.startswith("}}", end):
                if text[end] == '"':  # a string literal may hold braces
                    end += 1
                    while text[end] != '"':
                        end += 2 if text[end] == "\\" else 1
                end += 1
            action = text[start + 2 : end]
            trim_left, trim_right = action.startswith("- "), action.endswith(" -")
            before = text[pos:start]
            items.append(("text", before.rstrip(space) if trim_left else before))
            items.append(("action", action[2 if trim_left else 0 : -2 if trim_right else None].strip()))
            pos = end + 2
            while trim_right and pos < len(text) and text[pos] in space:
                pos += 1
        items.append(("text", text[pos:]))
        return items

    def render(self, data: dict[str, Any]) -> str:
        out: list[str] = []
        self._pos = 0
        self._block(data, data, [{}], out, run=True)
        return "".join(out)

    def _block(self, dot: Any, root: Any, scopes: list[dict[str, Any]], out: list[str], run: bool) -> str:
        """Run items up to the matching else/end; return which ended the block ("else ...", "end" or "")."""
        while self._pos < len(self.items):
            kind, body = self.items[self._pos]
            self._pos += 1
            if kind == "text":
                if run:
                    out.append(body)
                continue
            if body == "end" or body.startswith("else"):
                return body
            if body.startswith("if "):
                self._if(body[3:], dot, root, scopes, out, run)
            elif body.startswith("range "):
                self._range(body[6:], dot, root, scopes, out, run)
            elif m := re.fullmatch(r"(\$\w+) (:=|=) (.+)", body):
                if run:
                    value = self._eval(m.group(3), dot, root, scopes)
                    target = scopes[-1] if m.group(2) == ":=" else next(s for s in reversed(scopes) if m.group(1) in s)
                    target[m.group(1)] = value
            elif run:
                out.append(str(self._eval(body, dot, root, scopes)))
        return ""

    def _if(self, condition: str, dot: Any, root: Any, scopes: list[dict[str, Any]], out: list[str], run: bool) -> None:
        taken = False
        while True:
            now = run and not taken and _truth(self._eval(condition, dot, root, scopes))
            taken = taken or now
            ended = self._block(dot, root, [*scopes, {}], out, now)
            if ended == "end":
                return
            condition = ended[len("else if ") :] if ended.startswith("else if ") else "true"

    def _range(self, spec: str, dot: Any, root: Any, scopes: list[dict[str, Any]], out: list[str], run: bool) -> None:
        m = re.fullmatch(r"(\$\w+), (\$\w+) := (.+)", spec)
        assert m, spec
        items = self._eval(m.group(3), dot, root, scopes) if run else []
        start = self._pos
        for index, item in enumerate(items):
            self._pos = start  # each pass runs the body again; the last leaves the position after its end
            assert self._block(item, root, [*scopes, {m.group(1): index, m.group(2): item}], out, True) == "end"
        if not items:
            assert self._block(dot, root, scopes, out, False) == "end"

    def _eval(self, expr: str, dot: Any, root: Any, scopes: list[dict[str, Any]]) -> Any:
        words = _words(expr)
        functions = {"eq": lambda a, b: a == b, "not": lambda a: not _truth(a), "len": len,
                     "and": lambda a, b: b if _truth(a) else a, "slice": lambda a, i: a[i:]}  # fmt: skip
        values = [self._operand(w, dot, root, scopes) for w in words[1:]] if words[0] in functions else None
        if values is not None:
            return functions[words[0]](*values)
        assert len(words) == 1, expr
        return self._operand(words[0], dot, root, scopes)

    def _operand(self, word: str, dot: Any, root: Any, scopes: list[dict[str, Any]]) -> Any:
        if word.startswith("("):
            return self._eval(word[1:-1], dot, root, scopes)
        if word.startswith('"'):
            return _unquote(word[1:-1])
        if word.isdigit():
            return int(word)
        if word in ("true", "false"):
            return word == "true"
        if word.startswith("$."):
            return root[word[2:]]
        if word.startswith("$"):
            return next(s[word] for s in reversed(scopes) if word in s)
        if word.startswith("."):
            return dot[word[1:]]
        raise AssertionError(f"not a construct the TEMPLATE may use: {word}")


def _words(expr: str) -> list[str]:
    words, pos = [], 0
    while pos < len(expr):
        if expr[pos] == " ":
            pos += 1
            continue
        end = pos + 1
        if expr[pos] == "(":
            depth = 1
            while depth:
                depth += {"(": 1, ")": -1}.get(expr[end], 0)
                end += 1
        elif expr[pos] == '"':
            while expr[end] != '"' or expr[end - 1] == "\\":
                end += 1
            end += 1
        else:
            while end < len(expr) and expr[end] != " ":
                end += 1
        words.append(expr[pos:end])
        pos = end
    return words


def _unquote(body: str) -> str:
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"'}
    out, pos = [], 0
    while pos < len(body):
        if body[pos] == "\\":
            if body[pos + 1] == "x":
                out.append(chr(int(body[pos + 2 : pos + 4], 16)))
                pos += 4
                continue
            out.append(escapes[body[pos + 1]])
            pos += 2
        else:
            out.append(body[pos])
            pos += 1
    return "".join(out)


def _truth(value: Any) -> bool:
    return bool(value)
