"""Rows to tokens, with the trained tokens marked: what SFT trains on, and what the preview and `smoltrain data` show.

    rows = RowTokens(tokenizer, loss_on="completion")
    ids, mask = rows.sft(row)                      # an SFT row in TRL's format: messages, prompt/completion, text
    ids, mask = rows.display(row, "preference")     # any technique's row as its trainer sees it (DPO: the chosen answer)

Chat turns go through `ChatTemplate.tokenize`, the one assistant mask. Plain text is tokenized the
way TRL's SFTTrainer does it: with the tokenizer's own special tokens (a BOS where the model has
one) and an EOS appended, so the model learns to stop; for prompt/completion text the completion
starts where the prompt's tokens and the whole row's tokens part.

Never imports torch or textual itself (the tokenizer object does what it does).
"""

from __future__ import annotations

from typing import Any

from smoltrain.engine.data.chat_template import ChatTemplate, common_prefix, has_chat_template


class RowTokens:
    def __init__(self, tokenizer: Any, loss_on: str = "completion", template: ChatTemplate | None = None) -> None:
        self.tokenizer = tokenizer
        self.everything = loss_on == "all"
        self.template = template if template is not None else ChatTemplate(tokenizer) if has_chat_template(tokenizer) else None

    def sft(self, row: dict[str, Any]) -> tuple[list[int], list[int]]:
        """(ids, trained mask) of one converted SFT row."""
        if "messages" in row:
            return self._chat(row["messages"], train_from=0)
        if "text" in row:
            ids = self._text(_with_eos(row["text"], self.tokenizer))
            return ids, [1] * len(ids)
        prompt, completion = row["prompt"], row["completion"]
        if isinstance(prompt, list):
            return self._chat(prompt + completion, train_from=len(prompt))
        prompt_ids = self._text(prompt)
        ids = self._text(prompt + _with_eos(completion, self.tokenizer))
        start = 0 if self.everything else common_prefix(prompt_ids, ids)
        return ids, [0] * start + [1] * (len(ids) - start)

    def display(self, row: dict[str, Any], trl_format: str) -> tuple[list[int], list[int]]:
        """Any technique's row: SFT as trained; GRPO's prompt (nothing trained: the completions are sampled);
        a preference pair's prompt and chosen answer (rejected has the same shape); a KTO row's prompt and answer."""
        if trl_format in ("messages", "text", "prompt_completion"):
            return self.sft(row)
        if trl_format == "prompt_only":
            prompt = row["prompt"]
            ids = self._chat_template().prompt_ids(prompt) if isinstance(prompt, list) else self._text(prompt)
            return ids, [0] * len(ids)
        prompt, answer = row.get("prompt"), row["completion" if trl_format == "unpaired" else "chosen"]
        if isinstance(answer, list):
            template = self._chat_template()
            ids = list(template.tokenize((prompt or []) + answer, everything=True)[0])
            head = common_prefix(template.prompt_ids(prompt), ids) if prompt else 0
            return ids, [0] * head + [1] * (len(ids) - head)
        head_ids = self._text(prompt) if prompt else []
        answer_ids = list(self.tokenizer(answer, add_special_tokens=False)["input_ids"])
        return head_ids + answer_ids, [0] * len(head_ids) + [1] * len(answer_ids)

    def _chat(self, turns: list[dict[str, str]], train_from: int) -> tuple[list[int], list[int]]:
        return self._chat_template().tokenize(turns, train_from=train_from, everything=self.everything)

    def _chat_template(self) -> ChatTemplate:
        if self.template is None:
            raise ValueError("chat rows need a tokenizer with a chat template (prepare.py checks this first)")
        return self.template

    def _text(self, text: str) -> list[int]:
        return list(self.tokenizer(text)["input_ids"])


def _with_eos(text: str, tokenizer: Any) -> str:
    eos = tokenizer.eos_token or ""
    return text if not eos or text.endswith(eos) else text + eos

