"""GRPO rewards: each built-in on right, wrong and malformed completions, called the way TRL calls them.

Also: user functions from a file and their mistakes, weights and the sample log, and a tiny random
reward model (full and as a LoRA adapter) scoring plain and chat completions.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from smoltrain.config.schema import RewardFunction
from smoltrain.engine.techniques.rewards import (
    RewardFunctionError,
    RewardSet,
    build_reward_functions,
)
from smoltrain.errors import ConfigError, SmoltrainError

TINY_TOKENIZER = Path(__file__).resolve().parents[2] / "assets" / "tiny-llama"


def no_model(name: str) -> Path:
    raise AssertionError("only reward_model resolves models")


def build(*specs: dict[str, Any], resolve_model=no_model) -> RewardSet:
    return build_reward_functions([RewardFunction(**s) for s in specs], resolve_model=resolve_model, device="cpu")


def chat(texts: list[str]) -> list[list[dict[str, str]]]:
    return [[{"role": "assistant", "content": t}] for t in texts]


def call(fn, completions: list[Any], prompts: list[Any] | None = None, **columns: list[Any]) -> list[float | None]:
    """Exactly the keyword arguments TRL 1.16's GRPOTrainer passes (dataset columns + trainer extras)."""
    prompts = prompts if prompts is not None else ["Q?"] * len(completions)
    ignore = lambda *args, **kwargs: None
    return fn(prompts=prompts, completions=completions, completion_ids=[[1, 2]] * len(completions),
              trainer_state=None, log_extra=ignore, log_metric=ignore, **columns)  # fmt: skip


def one(name: str, **options: Any):
    return build({"name": name, **options}).functions[0]


# ----------------------------------------------------------------------------- math_answer and exact_match


@pytest.mark.parametrize("as_chat", [False, True], ids=["text", "chat"])
def test_math_answer_reads_the_marked_answer_and_compares_numbers(as_chat):
    completions = [
        "6 * 7 = 42\n#### 42",  # right
        "so the result is \\boxed{42}.",  # right, LaTeX style
        "#### 42.0",  # right: numbers compare by value
        "#### $1,200.",  # right against 1200: currency, thousands comma, period
        "I think 41\n#### 41",  # wrong
        "The answer is 42",  # malformed: no #### or \boxed{}
        "\\boxed{42",  # malformed: never closed
        "#### 41 ... wait, \\boxed{42}",  # the last marked answer counts
    ]
    answers = ["42", "42", "42", "1200", "42", "42", "42", "42"]
    fn = one("math_answer")
    scores = call(fn, chat(completions) if as_chat else completions, answer=answers)
    assert scores == [1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0]


def test_math_answer_takes_the_answer_from_a_gsm8k_solution_column_and_reads_units():
    solution = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nAltogether 48+24 = <<48+24=72>>72 clips.\n#### 72"
    scores = call(one("math_answer"), ["#### 72 clips", "#### 72", "#### 24", "\\boxed{\\frac{1}{2}}"],
                  answer=[solution, solution, solution, "0.5"])  # fmt: skip
    assert scores == [1.0, 1.0, 0.0, 1.0]


def test_exact_match_compares_the_whole_answer_not_a_number_inside_it():
    completions = ["12", " 12.0 ", "1,200", "-3", "**Paris**.", '"paris"', "The answer is 12.", "#### 12", "13", ""]
    answers = [12, "12", "1200", -3, "Paris", "Paris", "12", "12", "12", "12"]
    scores = call(one("exact_match"), completions, answer=answers)
    assert scores == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def test_exact_match_on_chat_completions_uses_the_configured_column_and_skips_rows_without_answer():
    fn = one("exact_match", answer_column="label")
    assert call(fn, chat(["Yes", "no"]), label=["yes", None]) == [1.0, None]


def test_a_missing_answer_column_names_the_columns_the_data_has():
    with pytest.raises(RewardFunctionError) as err:
        call(one("math_answer"), ["#### 1"], solution=["#### 1"])
    assert "'answer'" in err.value.message and "solution" in err.value.message
    assert "trainer_state" not in err.value.message
    assert "answer_column" in err.value.hint


# ----------------------------------------------------------------------------- format, length, json


@pytest.mark.parametrize("as_chat", [False, True], ids=["text", "chat"])
def test_format_wants_the_whole_completion_to_match_across_lines(as_chat):
    fn = one("format", pattern=r"<think>.*?</think>\s*<answer>.*?</answer>")
    completions = ["<think>a\nb</think>\n<answer>4</answer>", "<answer>4</answer>",
                   "<think>x</think><answer>4</answer> extra"]  # fmt: skip
    assert call(fn, chat(completions) if as_chat else completions) == [1.0, 0.0, 0.0]


def test_length_is_free_up_to_the_limit_then_falls_to_minus_one_at_twice_it():
    fn = one("length", max_chars=10)
    assert call(fn, ["", "x" * 10, "x" * 15, "x" * 20, "x" * 100]) == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert call(fn, chat(["x" * 15])) == [-0.5]


@pytest.mark.parametrize("as_chat", [False, True], ids=["text", "chat"])
def test_json_accepts_objects_and_arrays_bare_or_fenced(as_chat):
    completions = ['{"a": 1}', '\n```json\n{"a": [1, 2]}\n```\n', "[1, 2]", "{'a': 1}", '{"a": 1', "42", "Sure: {}"]
    scores = call(one("json"), chat(completions) if as_chat else completions)
    assert scores == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


# ----------------------------------------------------------------------------- python: the user's own function

USER_REWARDS = '''
def starts_with_answer(prompts, completions, answer, **kwargs):
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [1.0 if t.startswith(str(a)) else 0 for t, a in zip(texts, answer)]

def too_few(prompts, completions, **kwargs):
    return [1.0]

def words(prompts, completions, **kwargs):
    return ["good" for _ in completions]

def skips_odd(prompts, completions, **kwargs):
    return [float("nan") if i % 2 else 1 for i in range(len(completions))]

def crashes(prompts, completions, **kwargs):
    return [kwargs["missing"] for _ in completions]

NOT_A_FUNCTION = 3
'''


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_rewards.py"
    path.write_text(USER_REWARDS)
    return path


def test_a_python_reward_is_loaded_from_its_file_named_after_the_function_and_gets_the_columns(user_file):
    rewards = build({"name": "python", "path": str(user_file), "function": "starts_with_answer"})
    assert rewards.names == ["starts_with_answer"]
    assert call(rewards.functions[0], ["4 apples", "5"], answer=[4, 4]) == [1.0, 0.0]
    assert call(rewards.functions[0], chat(["4"]), answer=[4]) == [1.0]


def test_nan_from_a_python_reward_means_not_applicable(user_file):
    rewards = build({"name": "python", "path": str(user_file), "function": "skips_odd"},
                    {"name": "length", "max_chars": 1})  # fmt: skip
    scores = [call(fn, ["a", "bb"]) for fn in rewards.functions]
    assert scores == [[1.0, None], [0.0, -1.0]]
    assert [s.total for s in rewards.take_samples()] == [1.0, -1.0]


@pytest.mark.parametrize(
    ("path", "function", "key", "words"),
    [
        ("nowhere.py", "f", "path", "no such file"),
        (None, "absent", "function", "defines no 'absent'"),
        (None, "NOT_A_FUNCTION", "function", "not a function"),
    ],
)
def test_python_reward_config_mistakes_name_the_key(user_file, path, function, key, words):
    spec = {"name": "python", "path": str(user_file.parent / path) if path else str(user_file), "function": function}
    with pytest.raises(ConfigError) as err:
        build({"name": "length", "max_chars": 5}, spec)
    assert err.value.message.startswith(f"grpo.rewards[1].{key}") and words in err.value.message


def test_a_missing_function_hint_lists_what_the_file_defines(user_file):
    with pytest.raises(ConfigError) as err:
        build({"name": "python", "path": str(user_file), "function": "startswith_answer"})
    assert "starts_with_answer" in err.value.hint


def test_a_python_file_that_fails_to_import_is_a_config_error(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_real_module_xyz\n")
    with pytest.raises(ConfigError, match=r"grpo.rewards\[0\].path: importing .* failed: ModuleNotFoundError"):
        build({"name": "python", "path": str(broken), "function": "f"})


@pytest.mark.parametrize(
    ("function", "words"),
    [("too_few", "returned 1 scores for 2 completions"), ("words", "'good' (str) as score 0, not a finite number"),
     ("crashes", "raised KeyError")],  # fmt: skip
)
def test_a_misbehaving_python_reward_says_which_function_and_what_it_did(user_file, function, words):
    fn = build({"name": "python", "path": str(user_file), "function": function}).functions[0]
    with pytest.raises(RewardFunctionError) as err:
        call(fn, ["a", "b"], answer=[1, 2])
    assert isinstance(err.value, SmoltrainError)
    assert f"'{function}'" in err.value.message and str(user_file) in err.value.message and words in err.value.message


# ----------------------------------------------------------------------------- the set: names, weights, samples


def test_names_are_what_trl_logs_and_repeats_are_numbered():
    from trl.trainer.utils import get_callable_name, is_async_callable

    rewards = build({"name": "format", "pattern": "a+"}, {"name": "format", "pattern": "b+", "weight": 0.5},
                    {"name": "json"})  # fmt: skip
    assert rewards.names == ["format", "format_2", "json"]
    assert [get_callable_name(f) for f in rewards.functions] == rewards.names
    assert not any(is_async_callable(f) for f in rewards.functions)
    assert rewards.weights == [1.0, 0.5, 1.0]


def test_take_samples_gives_the_latest_batch_with_weighted_totals_then_forgets_it():
    rewards = build({"name": "math_answer", "weight": 2.0}, {"name": "length", "max_chars": 10, "weight": 0.5})
    prompts = [[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "6*7?"}]] * 3
    old = chat(["#### 1", "#### 2", "#### 3"])
    for completions in (old, chat(["#### 42", "#### 41", "x" * 20])):  # two generation batches; only the last is kept
        for fn in rewards.functions:
            call(fn, completions, prompts=prompts, answer=["42"] * 3)
    samples = rewards.take_samples()
    assert [s.completion for s in samples] == ["#### 42", "#### 41", "x" * 20]
    assert samples[0].prompt == "6*7?"
    assert samples[0].rewards == {"math_answer": 1.0, "length": 0.0}
    assert [s.total for s in samples] == [2.0, 0.0, -0.5]
    assert rewards.take_samples() == []


def test_a_reward_that_does_not_apply_adds_nothing_to_the_total():
    rewards = build({"name": "exact_match"}, {"name": "json", "weight": 3.0})
    completions = ['{"a": 1}', "yes"]
    for fn in rewards.functions:
        call(fn, completions, answer=[None, "yes"])
    totals = {s.completion: s.total for s in rewards.take_samples()}
    assert totals == {'{"a": 1}': 3.0, "yes": 1.0}


# ----------------------------------------------------------------------------- reward_model


@pytest.fixture(scope="module")
def reward_models(tmp_path_factory) -> dict[str, Path]:
    """A tiny random Llama reward model saved in full, and a LoRA SEQ_CLS adapter on it with a retrained head."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    root = tmp_path_factory.mktemp("reward_models")
    tokenizer = AutoTokenizer.from_pretrained(TINY_TOKENIZER)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
                         pad_token_id=tokenizer.pad_token_id, num_labels=1)  # fmt: skip
    torch.manual_seed(0)
    LlamaForSequenceClassification(config).save_pretrained(root / "full")
    tokenizer.save_pretrained(root / "full")
    # Load it back so the adapter records a real base path, as a reward stage's adapter does.
    base = LlamaForSequenceClassification.from_pretrained(root / "full")
    peft_model = get_peft_model(base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], task_type="SEQ_CLS"))
    with torch.no_grad():  # stand in for training: non-zero LoRA and a different head than the base's
        for name, param in peft_model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                param.normal_(0, 0.5)
    peft_model.save_pretrained(root / "adapter")
    tokenizer.save_pretrained(root / "adapter")
    # What the trained adapter itself says about each text, formatted as RewardTrainer trained on it (EOS appended).
    peft_model.eval()
    with torch.no_grad():
        expected = [peft_model(**tokenizer(p + c + tokenizer.eos_token, return_tensors="pt")).logits[0, 0].item()
                    for p, c in zip(PROMPTS, COMPLETIONS)]  # fmt: skip
    (root / "adapter_expected.json").write_text(json.dumps(expected))
    (root / "causal").mkdir()  # an SFT stage's adapter: the wrong kind of model for a reward
    (root / "causal" / "adapter_config.json").write_text(
        f'{{"task_type": "CAUSAL_LM", "base_model_name_or_path": "{root / "full"}"}}'
    )
    return {"full": root / "full", "adapter": root / "adapter", "causal": root / "causal", "root": root}


def reward_model(folder: Path):
    return build({"name": "reward_model", "model": "rm-stage"}, resolve_model=lambda name: folder).functions[0]


PROMPTS = ["Q: What is 2+2?\nA:", "Q: Name a colour.\nA:", "Q: Say hi.\nA:"]
COMPLETIONS = [" 4", " Blue, like the sky on a clear summer day.", ""]


@pytest.mark.parametrize("kind", ["full", "adapter"])
def test_a_reward_model_gives_one_finite_deterministic_score_per_completion(reward_models, kind):
    fn = reward_model(reward_models[kind])
    assert fn.__name__ == "reward_model"
    scores = call(fn, COMPLETIONS, prompts=PROMPTS)
    assert len(scores) == 3 and all(isinstance(s, float) and math.isfinite(s) for s in scores)
    assert len(set(scores)) == 3, "different texts score differently"
    assert call(fn, COMPLETIONS, prompts=PROMPTS) == scores
    # Batching pads the shorter texts: a text alone must score the same as in a batch.
    assert call(fn, COMPLETIONS[1:2], prompts=PROMPTS[1:2])[0] == pytest.approx(scores[1], abs=1e-5)

    chat_prompts = [[{"role": "user", "content": p}] for p in PROMPTS]
    chat_scores = call(fn, chat(COMPLETIONS), prompts=chat_prompts)
    assert len(chat_scores) == 3 and all(math.isfinite(s) for s in chat_scores)
    assert chat_scores != scores, "chat turns are rendered with the template, not concatenated"


def test_a_reward_adapter_scores_as_the_trained_adapter_does_with_its_own_head_and_lora(reward_models):
    full = call(reward_model(reward_models["full"]), COMPLETIONS, prompts=PROMPTS)
    adapted = call(reward_model(reward_models["adapter"]), COMPLETIONS, prompts=PROMPTS)
    assert all(abs(a - b) > 1e-4 for a, b in zip(full, adapted)), "the adapter changes the scores"
    expected = json.loads((reward_models["root"] / "adapter_expected.json").read_text())
    assert adapted == pytest.approx(expected, abs=1e-4), "merged and batched, it scores like the saved adapter"


def test_a_run_folder_is_read_through_its_final_folder(reward_models):
    final = reward_models["root"] / "run" / "final"
    final.parent.mkdir()
    final.symlink_to(reward_models["full"], target_is_directory=True)
    assert call(reward_model(final.parent), COMPLETIONS, prompts=PROMPTS) == call(
        reward_model(reward_models["full"]), COMPLETIONS, prompts=PROMPTS
    )


def test_what_is_not_a_reward_model_is_refused_naming_the_key(reward_models, tmp_path):
    pickled = tmp_path / "pickled"
    pickled.mkdir()
    (pickled / "config.json").write_text('{"architectures": ["LlamaForSequenceClassification"]}')
    (pickled / "pytorch_model.bin").write_bytes(b"")
    causal_lm = tmp_path / "causal_lm"
    causal_lm.mkdir()
    (causal_lm / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    cases = {reward_models["causal"]: "CAUSAL_LM adapter", tmp_path / "absent": "no such folder",
             pickled: "no .safetensors", causal_lm: "LlamaForCausalLM"}  # fmt: skip
    for folder, words in cases.items():
        with pytest.raises(ConfigError) as err:
            reward_model(folder)
        assert err.value.message.startswith("grpo.rewards[0].model") and words in err.value.message


# ----------------------------------------------------------------------------- a reward that scores nothing


def test_a_reward_that_scores_nothing_is_warned_about_then_stops_the_run(user_file):
    """TRL counts None and NaN as 0: a reward broken for every completion would train on nothing, silently."""
    from smoltrain.engine.techniques.rewards import SILENT_BATCHES_TO_STOP, build_reward_functions

    warnings: list = []
    specs = [RewardFunction.model_validate(s) for s in (
        {"name": "length", "max_chars": 10},
        {"name": "python", "path": str(user_file), "function": "skips_odd"},
    )]  # fmt: skip
    rewards = build_reward_functions(specs, resolve_model=lambda ref: Path(ref), device="cpu", emit=warnings.append)
    nothing = {"name": "exact_match"}
    exact = build_reward_functions([RewardFunction.model_validate(nothing)], resolve_model=lambda ref: Path(ref),
                                   device="cpu", emit=warnings.append)  # fmt: skip
    for _ in range(5):  # a reward that scores some completions is fine, however many batches
        for fn in rewards.functions:
            call(fn, ["a", "bb"])
    assert warnings == []
    for _ in range(SILENT_BATCHES_TO_STOP - 1):
        call(exact.functions[0], ["a", "b"], answer=[None, None])
    assert len(warnings) == 1 and "grpo.rewards[0] (exact_match) gave no completion a score" in warnings[0].message
    with pytest.raises(ConfigError, match=r"grpo.rewards\[0\] \(exact_match\): no completion got a score in 3"):
        call(exact.functions[0], ["a", "b"], answer=[None, None])
