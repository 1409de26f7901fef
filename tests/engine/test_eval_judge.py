"""The judge model: asked in both orders, so its verdicts do not depend on which answer it read first.
(The reward-model judge runs in the demo pipeline's test, tests/engine/test_pipeline.py.)"""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from smoltrain.config.schema import JudgeSection
from smoltrain.engine.evaluate.judge import ModelJudge
from smoltrain.engine.evaluate.prompts import PromptSet
from tests.conftest import TINY_MODEL

QUESTIONS = ["What is 7 + 5?", "Where does the zorb live?", "What is 9 * 3?", "Who is the friend of the snod?"]
GOOD = ["7 + 5 = 12.\n#### 12", "The zorb lives in the forest.", "9 * 3 = 27.\n#### 27", "The snod's friend is the pell."]
BAD = ["I don't know.", "7 + 5 = 12.", "That is a good question.", "9 * 3 = 26."]


@pytest.fixture(scope="module")
def judge():
    model = AutoModelForCausalLM.from_pretrained(TINY_MODEL).eval()
    return ModelJudge(model, AutoTokenizer.from_pretrained(TINY_MODEL), JudgeSection(model="m").prompt, label="tiny")


def _asked() -> PromptSet:
    return PromptSet([[{"role": "user", "content": q}] for q in QUESTIONS], {}, "test")


def test_swapping_the_two_models_swaps_every_verdict(judge):
    forward = judge.verdicts(_asked(), GOOD, BAD)
    backward = judge.verdicts(_asked(), BAD, GOOD)
    assert all(v in (0.0, 0.5, 1.0) for v in forward)
    assert [1 - v for v in forward] == backward


def test_the_same_answer_twice_is_a_tie(judge):
    assert judge.verdicts(_asked(), GOOD, GOOD) == [0.5] * len(GOOD)
