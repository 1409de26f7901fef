"""lm-evaluation-harness through smoltrain's glue, on local task files and the bundled tiny model:
the metric it reports is the one computed here by hand on the same items. (An unknown task and a hub
task offline, as a user meets them: tests/engine/test_eval.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from smoltrain.config.schema import EvalTask
from smoltrain.engine.evaluate.harness import run_task
from smoltrain.engine.generate import GenerationSettings, generate
from smoltrain.errors import DataError

pytest.importorskip("lm_eval")

ROOT = Path(__file__).resolve().parents[2]
TASKS = ROOT / "tests" / "data" / "eval"
MATH_SYSTEM = "Solve the problem. Show the equation, then give the final answer after ####."


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(ROOT / "assets" / "tiny-llama").eval()
    return model, AutoTokenizer.from_pretrained(ROOT / "assets" / "tiny-llama")


def _loglikelihood(model, tokenizer, context: str, continuation: str) -> float:
    """Sum of log P(continuation tokens | context), the way the harness splits the pair: the whole
    text tokenized, the context's tokens counted off the front."""
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([whole])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    return sum(float(logprobs[i - 1, whole[i]]) for i in range(len(ctx), len(whole)))


def test_multiple_choice_accuracy_matches_the_hand_computed_one(tiny):
    model, tokenizer = tiny
    scores = run_task(model, tokenizer, EvalTask(harness=str(TASKS / "sums_choice.yaml")), limit=None, batch_size=8,
                      where="eval.tasks[0]")  # fmt: skip
    rows = [json.loads(line) for line in (TASKS / "sums_choice.jsonl").read_text().splitlines()]
    by_hand = []
    for row in rows:
        lls = [_loglikelihood(model, tokenizer, row["question"], " " + c) for c in row["choices"]]
        by_hand.append(float(max(range(len(lls)), key=lls.__getitem__) == row["gold"]))
    assert scores.metrics["acc"] == by_hand
    assert 0.3 < sum(by_hand) / len(by_hand) < 1.0, "the tiny base half knows its sums: the check can fail either way"


def test_a_generative_task_answers_in_the_chat_template_as_smoltrain_does(tiny):
    model, tokenizer = tiny
    spec = EvalTask(harness=str(ROOT / "assets" / "eval" / "demo_math.yaml"), system_prompt=MATH_SYSTEM)
    scores = run_task(model, tokenizer, spec, limit=12, batch_size=4, where="eval.tasks[0]")
    rows = [json.loads(line) for line in (ROOT / "assets" / "eval" / "math.jsonl").read_text().splitlines()[:12]]
    by_hand = []
    for row in rows:
        answer = generate(model, tokenizer, row["prompt"], GenerationSettings(max_new_tokens=32, temperature=0.0))
        found = re.search(r"#### (-?[0-9]+)", answer)
        by_hand.append(float(found is not None and found.group(1) == row["answer"]))
    assert scores.metrics["exact_match"] == by_hand


def test_a_task_whose_data_is_not_there_says_so(tiny, tmp_path):
    model, tokenizer = tiny
    broken = tmp_path / "broken.yaml"
    broken.write_text((TASKS / "sums_choice.yaml").read_text().replace("sums_choice.jsonl", "missing.jsonl"))
    with pytest.raises(DataError, match="missing.jsonl"):
        run_task(model, tokenizer, EvalTask(harness=str(broken)), limit=2, batch_size=2, where="eval.tasks[0]")
