"""The last step of preparing a row, once the model's tokenizer is known: fit it to the chat template, and
for SFT tokenize it with the trained tokens marked.

    step = TemplateStep(tokenizer, detected, technique="sft", loss_on="completion", text="chat", model=name)
    row = step(converted_row)      # turns fitted (system folded where needed); SFT rows gain input_ids, assistant_masks
    step.fixes                     # Counter: what was changed, in how many rows (for the report and a warning)

What each format's turns are checked as: SFT chats whole; a conversational prompt/completion as one
conversation; a preference pair as prompt + chosen and prompt + rejected (the prompt folded once, the
same for both); implicit pairs each whole; GRPO prompts with the generation prompt. A row the
template refuses raises RowRejected (prepare.py names the row).

Prompt/completion *text* on a model with a chat template becomes a user turn and an assistant turn
(`data.template = "chat"`, the default): the model then learns the format it will be used in. With
`data.template = "raw"`, or a model without a chat template, it trains as the plain text it is.

SFT rows leave here tokenized (`input_ids`, `assistant_masks`), so TRL's SFTTrainer only builds labels,
truncates and drops rows with nothing left to learn: the mask it trains on is the one the preview
and `smoltrain data` show.

Never imports torch or textual itself.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from smoltrain.engine.data.chat_template import ChatTemplate, has_chat_template
from smoltrain.engine.data.detect import Detected
from smoltrain.engine.data.tokens import RowTokens
from smoltrain.errors import ModelError

Row = dict[str, Any]


class TemplateStep:
    def __init__(self, tokenizer: Any, detected: Detected, *, technique: str, loss_on: str, text: str, model: str) -> None:
        self.template = ChatTemplate(tokenizer) if has_chat_template(tokenizer) else None
        self._turns = turns = detected.conversational or detected.trl_format == "messages"
        if turns and self.template is None:
            raise ModelError(
                f"model {model!r} has no chat template, and the dataset's rows are chat turns",
                hint="use an instruct model, or a prompt/completion or text dataset (data.format)",
            )
        self.to_chat = (technique == "sft" and detected.trl_format == "prompt_completion" and not turns
                        and text == "chat" and self.template is not None)  # fmt: skip
        self.trl_format = "messages" if self.to_chat else detected.trl_format
        self.tokens = RowTokens(tokenizer, loss_on, self.template) if technique == "sft" else None
        self.fixes: Counter[str] = Counter()

    @property
    def text_format(self) -> str:
        """How SFT text reaches the model, for run_started: in the chat template, or as raw text."""
        return "chat template" if self._turns or self.to_chat else "raw text"

    def __call__(self, row: Row) -> Row:
        if self.to_chat:
            row = {"messages": [{"role": "user", "content": row["prompt"]}, {"role": "assistant", "content": row["completion"]}]}
        if self.template is not None and (self._turns or self.to_chat):
            row, fix = self._fit(row, self.template)
            if fix:
                self.fixes[fix] += 1
        if self.tokens is not None:
            ids, mask = self.tokens.sft(row)
            row = {**row, "input_ids": ids, "assistant_masks": mask}
        return row

    def _fit(self, row: Row, template: ChatTemplate) -> tuple[Row, str | None]:
        """The row with its turns as the template takes them, and what was changed (at most one fix a row)."""
        fmt = self.trl_format
        if fmt == "messages":
            messages, fix = template.fit(row["messages"])
            return {**row, "messages": messages}, fix
        if fmt == "prompt_only":
            prompt, fix = template.fit(row["prompt"], generation_prompt=True)
            return {**row, "prompt": prompt}, fix
        if fmt == "preference_implicit":
            chosen, fix = template.fit(row["chosen"])
            rejected, other = template.fit(row["rejected"])
            return {**row, "chosen": chosen, "rejected": rejected}, fix or other
        # prompt_completion, unpaired or preference (KTO's pairs too, before they are unpaired): the prompt
        # is fitted once, with the (first) answer after it.
        answer = row["completion" if "completion" in row else "chosen"]
        whole, fix = template.fit(row["prompt"] + answer)
        prompt = whole[: len(whole) - len(answer)]
        if "rejected" in row:
            template.render(prompt + row["rejected"])  # the other answer must render too
        return {**row, "prompt": prompt}, fix
