"""Answers for people to read: a prompt rendered in the model's chat template, generated until the
template's end of turn, decoded without special tokens, optionally streamed piece by piece.

Used by the before/after samples at the end of each policy stage (greedy), `smoltrain chat` and the
app's "Try it" tab (sampled, streamed). A prompt is a list of chat turns, or a plain string for a
model without a chat template; the model is asked to stop at its EOS and at the template's
end-of-turn marker (probed by data.chat_template.ChatTemplate), so an answer does not run on into an
invented next turn.

Runs in the worker or the chat child process. Imports torch and transformers; never textual.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from smoltrain.engine.data.chat_template import ChatTemplate, has_chat_template

Prompt = Sequence[dict[str, str]] | str


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 256
    temperature: float = 0.7  # 0: greedy, the same answer every time
    top_p: float = 0.9

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0


GREEDY = GenerationSettings(temperature=0.0)


def prompt_ids(tokenizer: Any, prompt: Prompt, template: ChatTemplate | None = None) -> list[int]:
    """The ids the model answers after: the chat template's rendering up to the assistant header, the
    turns fitted to the template first (a system turn folded into the first user turn where the
    template refuses or drops one, as training does). Pass `template` to probe it once for many prompts."""
    if isinstance(prompt, str):
        if not has_chat_template(tokenizer):
            return list(tokenizer(prompt, add_special_tokens=True)["input_ids"])
        prompt = [{"role": "user", "content": prompt}]
    template = template or ChatTemplate(tokenizer)
    return template.prompt_ids(template.fit(list(prompt), generation_prompt=True)[0])


def stop_token_ids(tokenizer: Any) -> list[int]:
    """EOS and the template's end-of-turn token, where it is one token."""
    stops = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    if has_chat_template(tokenizer):
        marker = ChatTemplate(tokenizer).end_of_turn
        ids = tokenizer.convert_tokens_to_ids(marker) if marker else None
        if isinstance(ids, int) and ids != tokenizer.unk_token_id:
            stops.add(ids)
    return sorted(stops)


class _Stream:
    """transformers' streamer protocol (put/end), decoding the new tokens so far and passing on what is new.

    The pieces join up to the answer `generate` returns: leading whitespace is dropped and trailing
    whitespace held back until more text follows it (the answer is stripped)."""

    def __init__(self, tokenizer: Any, on_text: Callable[[str], None], skip: int) -> None:
        self.tokenizer, self.on_text, self._skip = tokenizer, on_text, skip
        self._ids: list[int] = []
        self._said = ""

    def put(self, value: torch.Tensor) -> None:
        ids = value.reshape(-1).tolist()
        if self._skip:  # the first call hands over the prompt
            self._skip = 0
            return
        self._ids.extend(ids)
        text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
        if not text.endswith("\ufffd"):  # else half of a multi-byte character: wait for the rest
            self._say(text.strip())

    def end(self) -> None:
        self._say(self.tokenizer.decode(self._ids, skip_special_tokens=True).strip())

    def _say(self, text: str) -> None:
        if len(text) > len(self._said):
            self.on_text(text[len(self._said) :])
            self._said = text


@torch.no_grad()
def generate(model: Any, tokenizer: Any, prompt: Prompt, settings: GenerationSettings = GREEDY,
             on_text: Callable[[str], None] | None = None) -> str:  # fmt: skip
    """One answer to `prompt`; `on_text` receives it piece by piece as it is generated."""
    ids = torch.tensor([prompt_ids(tokenizer, prompt)], device=model.device)
    kwargs: dict[str, Any] = {"max_new_tokens": settings.max_new_tokens, "do_sample": not settings.greedy}
    if not settings.greedy:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:
        kwargs.update(temperature=None, top_p=None, top_k=None)  # a generation_config's sampling defaults stay out
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    try:
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), eos_token_id=stop_token_ids(tokenizer),
            pad_token_id=pad, streamer=_Stream(tokenizer, on_text, skip=1) if on_text else None, **kwargs,
        )  # fmt: skip
    finally:
        model.train(was_training)
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


@torch.no_grad()
def generate_batch(model: Any, tokenizer: Any, prompts: Sequence[Prompt], max_new_tokens: int,
                   batch_size: int = 16, on_batch: Callable[[int], None] | None = None,
                   temperature: float = 0.0, seed: int = 0) -> list[str]:  # fmt: skip
    """Answers to many prompts, `batch_size` at a time (left-padded, so every answer starts where its
    prompt ends). Greedy by default: the same answers `generate` gives one by one, up to float rounding
    in padded batches. With a temperature, sampled from the model's whole distribution (no top-p or
    top-k cut, as GRPO and RLOO sample in training) from its own random stream seeded by `seed`: the
    same answers on a rerun, and a caller's random state (a training run's) is left as it was.
    `on_batch` hears how many are done after each batch."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    template = ChatTemplate(tokenizer) if has_chat_template(tokenizer) else None
    encoded = [prompt_ids(tokenizer, p, template) for p in prompts]
    # Longest first: similar lengths share a batch (less padding), and running out of memory happens at once.
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    sampling: dict[str, Any] = {"do_sample": True, "temperature": temperature, "top_p": 1.0, "top_k": 0}
    if temperature <= 0:
        sampling = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    answers: list[str] = [""] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=[model.device] if model.device.type == "cuda" else []):
            torch.manual_seed(seed)
            for start in range(0, len(order), batch_size):
                chunk = order[start : start + batch_size]
                width = max(len(encoded[i]) for i in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):
                    ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
                    mask[row, width - len(encoded[i]) :] = 1
                out = model.generate(
                    input_ids=ids.to(model.device), attention_mask=mask.to(model.device), max_new_tokens=max_new_tokens,
                    **sampling, eos_token_id=stop_token_ids(tokenizer), pad_token_id=pad,
                )  # fmt: skip
                for row, i in enumerate(chunk):
                    answers[i] = tokenizer.decode(out[row, width:], skip_special_tokens=True).strip()
                if on_batch is not None:
                    on_batch(min(start + batch_size, len(order)))
    finally:
        model.train(was_training)
    return answers
