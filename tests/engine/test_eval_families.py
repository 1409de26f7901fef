"""Evaluation on the family matrix (tiny random-weight models with real configs, special tokens and chat
templates): batched answers are the answers one by one, and the harness gets each template's prompt
with the system turn kept (folded into the first user turn where the template refuses one), not the
harness's own fallback that drops it."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from smoltrain.config.schema import EvalTask
from smoltrain.engine.evaluate.harness import _lm_class, run_task
from smoltrain.engine.generate import GenerationSettings, generate, generate_batch
from tests.conftest import PROJECT_ROOT
from tests.families import FAMILIES

SYSTEM = "Solve the problem. Show the equation, then give the final answer after ####."
PROMPTS = [
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "2 + 2 = ?"}],
    [{"role": "user", "content": "What is the friend of the zorb, and where does it live?"}],
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "Compute 17 * 3, then add 12 to it."}],
]


def _load(path):
    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_batched_answers_are_the_answers_one_by_one(family_model, name):
    model, tokenizer = _load(family_model(name))
    one_by_one = [generate(model, tokenizer, p, GenerationSettings(max_new_tokens=6, temperature=0.0)) for p in PROMPTS]
    assert generate_batch(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=3) == one_by_one


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_harness_prompt_keeps_the_system_turn(family_model, name):
    model, tokenizer = _load(family_model(name))
    pytest.importorskip("lm_eval")
    lm = _lm_class()(model, tokenizer, 2, [])
    text = lm.apply_chat_template([{"role": "system", "content": SYSTEM}, {"role": "user", "content": "2 + 2 = ?"}])
    assert SYSTEM in text and "2 + 2 = ?" in text
    assert text.index(SYSTEM) < text.index("2 + 2 = ?")


def test_a_generative_task_runs_on_a_template_that_refuses_system_turns(family_model):
    pytest.importorskip("lm_eval")
    model, tokenizer = _load(family_model("gemma-2"))
    spec = EvalTask(harness=str(PROJECT_ROOT / "assets" / "eval" / "demo_math.yaml"), system_prompt=SYSTEM)
    scores = run_task(model, tokenizer, spec, limit=3, batch_size=3, where="eval.tasks[0]")
    assert len(scores.metrics["exact_match"]) == 3
