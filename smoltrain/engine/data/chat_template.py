"""The chat template as training sees it: rows fitted to what it accepts, and THE assistant mask.

    template = ChatTemplate(tokenizer)                # looks at the template once: a few renders, no weights
    turns, fix = template.fit(turns)                   # system turns folded where the template refuses or drops them
    ids, mask = template.tokenize(turns)               # the assistant mask: training, the preview and `smoltrain data`
    template.mask_source                               # where the mask comes from, for run_started

Where the mask comes from, in this order:

1. The template's own `{% generation %}` markers (the bundled demo model has them): transformers'
   `return_assistant_tokens_mask`.
2. TRL's training copy of a template it knows (Qwen2.5, Qwen3, Llama-3, Gemma, Gemma-3, Phi-3, ...;
   `trl.chat_template_utils.get_training_chat_template`): ids and mask exactly as TRL's SFTTrainer
   makes them with `assistant_only_loss`.
3. Otherwise (Llama-3.1/3.2, Mistral, SmolLM, fine-tunes with edited templates) smoltrain finds the
   spans itself. The conversation is rendered once. An assistant turn's trained text starts where its
   prompt ends: after `render(turns before it, add_generation_prompt=True)` when the full text starts
   with that, else after the assistant header (what the generation prompt adds), else at the content.
   Its content is found there (as written, trimmed, or, for templates that drop earlier turns'
   reasoning, the part after `</think>`), and the trained text ends after the end-of-turn marker
   that follows it (`<|eot_id|>`, `</s>`, `<end_of_turn>`, ...: what the template puts between an
   answer and the next turn, found once by rendering probe turns). Tokens that overlap that text,
   by the tokenizer's character offsets, are trained. Nothing of the system or user turns or the
   role headers is, and templates that render earlier turns differently once more turns follow
   (Qwen3 drops their reasoning) still get the right mask, because only the full text is tokenized.

System turns: a template that raises on them (Gemma-2: "System role not supported") or renders a row
without them (Mistral v0.3 puts the system text into the *last* user turn only, so a single-turn row
ending with the answer loses it) gets each system text folded into the next user turn, separated by
a blank line, as those models' own docs advise. `fit` says which it did; prepare.py counts the rows.
Any other template error is `RowRejected` with the template's own message, and the run stops
naming the row.

Never imports textual. Imports TRL (which imports torch) only for templates without generation markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from jinja2 import TemplateError

from smoltrain.engine.data.convert import RowRejected, Turn

FOLDED_REFUSED = "system turn folded into the next user turn (the chat template refuses system turns)"
FOLDED_DROPPED = "system turn folded into the next user turn (the chat template leaves it out of such rows)"
_PROBE_USER, _PROBE_ANSWER, _PROBE_AGAIN = "Probe question one.", "Probe answer one.", "Probe question two."
_THINK_END = "</think>"
# What a template may raise besides its own raise_exception (a TemplateError): bad keys, types, indexes.
_RENDER_ERRORS = (TemplateError, TypeError, ValueError, KeyError, IndexError, AttributeError)


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


class ChatTemplate:
    """One tokenizer's chat template, checked and probed once; renders, fits and masks conversations."""

    def __init__(self, tokenizer: Any) -> None:
        if not has_chat_template(tokenizer):
            raise ValueError("the tokenizer has no chat template")
        self.tokenizer = tokenizer
        own = tokenizer.chat_template
        self._own = own.get("default", next(iter(own.values()))) if isinstance(own, dict) else own
        self._training: str | None = None  # TRL's training copy, when that is what masks
        self.header = ""  # what add_generation_prompt appends (the assistant's role header)
        self.end_of_turn = ""  # what closes an assistant turn before the next one
        self._by_markers = True
        if "{% generation" in self._own or "{%- generation" in self._own:
            self.mask_source = "the template's generation markers"
        elif (training := _trl_training_template(tokenizer)) is not None:
            self._training = training
            self.mask_source = "TRL's training copy of this template"
        else:
            self._by_markers = False
            self.mask_source = "spans matched in the rendered text"
        self._probe()

    # --- rendering ------------------------------------------------------------------------------

    def render(self, turns: Sequence[Turn], *, generation_prompt: bool = False) -> str:
        """The text the model sees for `turns`; RowRejected with the template's message if it refuses them."""
        try:
            return self.tokenizer.apply_chat_template(list(turns), tokenize=False, add_generation_prompt=generation_prompt)
        except _RENDER_ERRORS as exc:
            raise RowRejected(_message(exc)) from None

    def prompt_ids(self, turns: Sequence[Turn]) -> list[int]:
        """Token ids of a prompt, ending with the assistant header the model answers after."""
        return self._ids(self.render(turns, generation_prompt=True))

    def fit(self, turns: list[Turn], *, generation_prompt: bool = False) -> tuple[list[Turn], str | None]:
        """`turns` as the template will take them, and what was changed (FOLDED_REFUSED, FOLDED_DROPPED or None)."""
        has_system = any(t["role"] == "system" and t["content"].strip() for t in turns)
        try:
            text = self.render(turns, generation_prompt=generation_prompt)
        except RowRejected:
            if not has_system:
                raise
            folded = fold_system(turns)
            self.render(folded, generation_prompt=generation_prompt)  # a second, other error stops the row
            return folded, FOLDED_REFUSED
        if has_system and any(t["role"] == "system" and t["content"].strip() not in text for t in turns):
            folded = fold_system(turns)
            self.render(folded, generation_prompt=generation_prompt)
            return folded, FOLDED_DROPPED
        return turns, None

    # --- the assistant mask -----------------------------------------------------------------------

    def tokenize(self, turns: Sequence[Turn], *, train_from: int = 0, everything: bool = False) -> tuple[list[int], list[int]]:
        """(token ids, trained mask) of a conversation: its assistant turns (from index `train_from` on) and
        their end-of-turn tokens are trained; or every token, with `everything`."""
        if everything:
            ids = self._ids(self.render(turns))
            return ids, [1] * len(ids)
        if self._by_markers:
            return self._marked(turns, train_from)
        return self._matched(turns, train_from)

    def _marked(self, turns: Sequence[Turn], train_from: int) -> tuple[list[int], list[int]]:
        """Masks from {% generation %} markers, the template's own or TRL's training copy's."""
        try:
            out = self.tokenizer.apply_chat_template(
                list(turns), tokenize=True, return_dict=True, return_assistant_tokens_mask=True,
                chat_template=self._training,
            )  # fmt: skip
        except _RENDER_ERRORS as exc:
            raise RowRejected(_message(exc)) from None
        ids, mask = list(out["input_ids"]), list(out["assistant_masks"])
        if train_from:
            # Earlier assistant turns belong to the prompt: nothing before the prompt's end (rendered by
            # the same template as the ids) is trained.
            try:
                prompt = self.tokenizer.apply_chat_template(list(turns[:train_from]), tokenize=False,
                                                            add_generation_prompt=True, chat_template=self._training)  # fmt: skip
            except _RENDER_ERRORS as exc:
                raise RowRejected(_message(exc)) from None
            start = common_prefix(self._ids(prompt), ids)
            mask = [0] * start + mask[start:]
        return ids, mask

    def _matched(self, turns: Sequence[Turn], train_from: int) -> tuple[list[int], list[int]]:
        text = self.render(turns)
        spans = self._assistant_spans(text, turns, train_from)
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        mask = [int(any(start < span_end and end > span_start for span_start, span_end in spans))
                for start, end in encoded["offset_mapping"]]  # fmt: skip
        return list(encoded["input_ids"]), mask

    def _assistant_spans(self, text: str, turns: Sequence[Turn], train_from: int) -> list[tuple[int, int]]:
        spans: list[tuple[int, int]] = []
        cursor = 0
        for index, turn in enumerate(turns):
            if turn["role"] != "assistant":
                found = _locate(text, turn["content"], cursor)
                cursor = found[1] if found else cursor
                continue
            start = self._answer_start(text, turns[:index], cursor)
            found = _locate(text, turn["content"], start)
            if found is None:
                number = sum(t["role"] == "assistant" for t in turns[: index + 1])
                raise RowRejected(f"assistant turn {number} does not appear in the text the chat template renders "
                                  "for this row, so its tokens cannot be found")  # fmt: skip
            end = found[1]
            closing = text.find(self.end_of_turn, end) if self.end_of_turn else -1
            if closing >= 0 and not text[end:closing].strip():
                end = closing + len(self.end_of_turn)
            if index >= train_from:
                spans.append((start, end))
            cursor = end
        return spans

    def _answer_start(self, text: str, before: Sequence[Turn], cursor: int) -> int:
        """Where the model's answer starts: right after its prompt as the template renders it alone."""
        prompt = self.render(before, generation_prompt=True)
        if text.startswith(prompt) and len(prompt) >= cursor:
            return len(prompt)
        header = text.find(self.header, cursor) if self.header else -1
        return header + len(self.header) if header >= 0 else cursor

    # --- probing ------------------------------------------------------------------------------------

    def _probe(self) -> None:
        """The assistant header and the end-of-turn marker, from renders of three probe turns."""
        user, answer = {"role": "user", "content": _PROBE_USER}, {"role": "assistant", "content": _PROBE_ANSWER}
        try:
            alone = self.render([user])
            prompt = self.render([user], generation_prompt=True)
            answered = self.render([user, answer])
            followed = self.render([user, answer, {"role": "user", "content": _PROBE_AGAIN}])
        except RowRejected:
            return  # a template that refuses even these: the rows' own renders will say why
        self.header = prompt[self._shared_length(alone, prompt) :]
        tail_alone = answered[answered.find(_PROBE_ANSWER) + len(_PROBE_ANSWER) :]
        tail_followed = followed[followed.find(_PROBE_ANSWER) + len(_PROBE_ANSWER) :]
        # What closes a turn mid-conversation, up to its last non-space character ("<|im_end|>", not "\n").
        self.end_of_turn = tail_alone[: self._shared_length(tail_alone, tail_followed)].rstrip()

    def _shared_length(self, a: str, b: str) -> int:
        """Characters of `a` in the tokens `a` and `b` start with: a shared prefix that ends on a token
        boundary, so "<|end|>\n<|endoftext|>" and "<|end|>\n<|user|>" share "<|end|>\n", not "<|end|>\n<|"."""
        first = self.tokenizer(a, add_special_tokens=False, return_offsets_mapping=True)
        second = self.tokenizer(b, add_special_tokens=False)["input_ids"]
        n = common_prefix(first["input_ids"], second)
        return first["offset_mapping"][n - 1][1] if n else 0

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


def fold_system(turns: Sequence[Turn]) -> list[Turn]:
    """Each system turn's text moved to the start of the next user turn, after a blank line."""
    out: list[Turn] = []
    pending: list[str] = []
    for turn in turns:
        if turn["role"] == "system":
            if turn["content"].strip():
                pending.append(turn["content"].strip())
            continue
        if turn["role"] == "user" and pending:
            turn = {**turn, "content": "\n\n".join([*pending, turn["content"]])}
            pending = []
        out.append(turn)
    if pending:
        raise RowRejected("a system turn with no user turn after it, and the chat template does not take system turns")
    return out


def _locate(text: str, content: str, start: int) -> tuple[int, int] | None:
    """Where `content` appears in `text` from `start` on: as written, trimmed, or only its part after </think>."""
    candidates = [content, content.strip()]
    if _THINK_END in content:
        candidates.append(content.rsplit(_THINK_END, 1)[1].strip())
    for candidate in candidates:
        if candidate:
            at = text.find(candidate, start)
            if at >= 0:
                return at, at + len(candidate)
    return None


def common_prefix(a: Sequence[Any], b: Sequence[Any]) -> int:
    """How many leading items `a` and `b` share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _message(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _trl_training_template(tokenizer: Any) -> str | None:
    """TRL's training copy of the tokenizer's template (with generation markers), or None if TRL has none."""
    from trl.chat_template_utils import get_training_chat_template

    try:
        return get_training_chat_template(tokenizer)
    except ValueError:
        return None
