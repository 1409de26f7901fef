"""The judge: which of two models answered each held-out prompt better.

Two kinds, [eval.judge]:
- reward_model: a trained reward model (a reward stage of the run, or a reward run's folder), loaded
  as GRPO's reward_model reward loads it (engine/techniques/external_rewards.py): the answer it
  scores higher wins; equal scores tie.
- model: a causal LM asked the judge prompt with the question and both answers, in both orders (a
  judge's liking for the first answer cancels out). Its verdict is read from the probability of
  the next token being "A" or "B" after its chat template's generation prompt: no sampling, no
  parsing of free text. The answer with more probability over the two orders wins; within 0.05 of
  even, a tie.

A verdict is 1 (the later model's answer wins), 0.5 (tie) or 0; their mean is the win rate
(evalresults.py gives it its interval).

Runs in the CLI's process or the worker. Imports torch; never textual.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch

from smoltrain.config.schema import JudgeSection
from smoltrain.engine.evaluate.prompts import PromptSet

TIE = 1e-6  # reward-model scores closer than this tie
MODEL_TIE = 0.05  # a judge model's preference within this of 0.5 ties


class Judge(Protocol):
    label: str

    def verdicts(self, prompts: PromptSet, later: list[str], earlier: list[str]) -> list[float]: ...


class RewardModelJudge:
    def __init__(self, folder: Path, device: str, label: str) -> None:
        from smoltrain.engine.techniques.external_rewards import load_reward_model

        self.scorer = load_reward_model(folder, device, "eval.judge", key="reward_model")
        self.label = label

    def verdicts(self, prompts: PromptSet, later: list[str], earlier: list[str]) -> list[float]:
        turns = list(prompts.prompts)
        a = self.scorer(turns, [[{"role": "assistant", "content": x}] for x in later])
        b = self.scorer(turns, [[{"role": "assistant", "content": x}] for x in earlier])
        return [0.5 if abs((x or 0.0) - (y or 0.0)) < TIE else float((x or 0.0) > (y or 0.0)) for x, y in zip(a, b)]


class ModelJudge:
    def __init__(self, model: Any, tokenizer: Any, prompt: str, label: str) -> None:
        self.model, self.tokenizer, self.prompt, self.label = model, tokenizer, prompt, label
        self.letters = [self._letter_id("A"), self._letter_id("B")]

    def _letter_id(self, letter: str) -> int:
        ids = self.tokenizer(letter, add_special_tokens=False)["input_ids"]
        return int(ids[0])

    @torch.no_grad()
    def _p_first(self, question: str, a: str, b: str) -> float:
        """P("A") / (P("A") + P("B")) for the next token after the judge prompt."""
        from smoltrain.engine.generate import prompt_ids

        text = self.prompt.format(question=question, a=a, b=b)
        ids = torch.tensor([prompt_ids(self.tokenizer, [{"role": "user", "content": text}])], device=self.model.device)
        logits = self.model(input_ids=ids).logits[0, -1, self.letters].float()
        return float(torch.softmax(logits, dim=-1)[0])

    def verdicts(self, prompts: PromptSet, later: list[str], earlier: list[str]) -> list[float]:
        out = []
        for question, x, y in zip(prompts.questions, later, earlier):
            prefer_later = (self._p_first(question, x, y) + (1 - self._p_first(question, y, x))) / 2
            out.append(0.5 if abs(prefer_later - 0.5) < MODEL_TIE else float(prefer_later > 0.5))
        return out


def build_judge(section: JudgeSection, *, reward_folder: Path | None, device: str, load_causal: Any) -> Judge:
    """The judge [eval.judge] asks for; `reward_folder` is its reward model's folder, found by the caller."""
    if section.reward_model is not None:
        assert reward_folder is not None
        return RewardModelJudge(reward_folder, device, label=str(section.reward_model))
    model, tokenizer = load_causal(str(section.model))
    return ModelJudge(model, tokenizer, section.prompt, label=str(section.model))
