"""Prompts tasks answered several times at a temperature: the policy's own success rate, as training
samples it. On the bundled tiny model: the sampled answers vary within a prompt, a rerun gives the same
ones, a prompt's score is the mean of its answers', and temperature 0 keeps the greedy answers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from smoltrain.config.schema import EvalTask, RewardFunction
from smoltrain.engine.evaluate import prompts
from smoltrain.engine.generate import generate_batch

ROOT = Path(__file__).resolve().parents[2]
DIGIT = r"(?s).*\d.*"


@pytest.fixture(scope="module")
def tiny():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(ROOT / "assets" / "tiny-llama").eval()
    return model, AutoTokenizer.from_pretrained(ROOT / "assets" / "tiny-llama")


def _task(**kw) -> EvalTask:
    return EvalTask(prompts=str(ROOT / "assets" / "eval" / "math.jsonl"), **kw)


def test_sampled_answers_vary_repeat_on_a_rerun_and_score_as_their_mean(tiny):
    model, tokenizer = tiny
    task = _task(samples=4, temperature=1.0)
    asked = prompts.load_prompts(task, 6, "eval.tasks[0]")
    before = torch.random.get_rng_state()
    first = prompts.answer(model, tokenizer, asked, max_new_tokens=12, batch_size=8, where="eval.tasks[0]",
                           samples=4, temperature=1.0)  # fmt: skip
    assert torch.equal(torch.random.get_rng_state(), before)  # a training run's random stream is left alone
    again = prompts.answer(model, tokenizer, asked, max_new_tokens=12, batch_size=8, where="eval.tasks[0]",
                           samples=4, temperature=1.0)  # fmt: skip
    assert first == again
    assert [len(group) for group in first] == [4] * 6
    assert sum(len(set(group)) > 1 for group in first) >= 4  # sampled, not four copies of one answer

    specs = [RewardFunction(name="format", pattern=DIGIT)]
    scores = prompts.score(specs, asked, first, resolve_model=Path, device="cpu")
    by_hand = [sum(bool(re.fullmatch(DIGIT, a)) for a in group) / 4 for group in first]
    assert scores["format"] == pytest.approx(by_hand)


def test_temperature_zero_keeps_the_greedy_answers(tiny):
    model, tokenizer = tiny
    asked = prompts.load_prompts(_task(), 5, "eval.tasks[0]")
    answers = prompts.answer(model, tokenizer, asked, max_new_tokens=10, batch_size=8, where="eval.tasks[0]")
    assert [group[0] for group in answers] == generate_batch(model, tokenizer, asked.prompts, 10, batch_size=8)
    assert all(len(group) == 1 for group in answers)
