"""Pretrain the tiny Llama "base model" on plain text about the toy world (no chat markup).

Needs the tokenizer in assets/tiny-llama/ (assets/build/tokenizer.py). Writes config.json,
generation_config.json and model.safetensors (float32) next to it. About 3.5 minutes on 2 idle CPU cores:

    python assets/build/pretrain.py

The corpus (world.CORPUS_MIX) is one fresh stream of plain-text world documents, each closed by an
end marker, packed into blocks and read once in a fixed order. The base model learns the facts, the
arithmetic table and when to stop, but never sees the chat template: teaching that is SFT's job.
"""

from __future__ import annotations

import math
import random
import time

import torch
from tokenizer import ENDOFTEXT, IM_END, OUT_DIR, PAD
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerBase,
)
from world import SEED, World

SEQ_LEN = 128
BATCH_SIZE = 16
STEPS = 900
LR, MIN_LR, WARMUP = 2e-3, 2e-4, 60  # 3e-3 learns the table too, but copies operands less reliably
THREADS = 2  # fixed, so the same machine gives bit-identical weights


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    id_ = tokenizer.convert_tokens_to_ids(token)
    assert isinstance(id_, int)
    return id_


def model_config(tokenizer: PreTrainedTokenizerBase) -> LlamaConfig:
    eot, im_end, pad = (token_id(tokenizer, t) for t in (ENDOFTEXT, IM_END, PAD))
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        # As in Qwen's instruct models: <|endoftext|> is bos, <|im_end|> (which ends a turn) is eos.
        bos_token_id=eot,
        eos_token_id=im_end,
        pad_token_id=pad,
    )


def generation_config(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    eot, im_end, pad = (token_id(tokenizer, t) for t in (ENDOFTEXT, IM_END, PAD))
    # Either end marker stops generation: the base model ends documents with both.
    return GenerationConfig(bos_token_id=eot, eos_token_id=[im_end, eot], pad_token_id=pad)


def corpus_blocks(tokenizer: PreTrainedTokenizerBase, n_blocks: int) -> torch.Tensor:
    """Exactly n_blocks x SEQ_LEN tokens of documents, each followed by an end marker."""
    world, rng = World(), random.Random(SEED + 2)
    # Both end markers close documents, so the base model stops at either; SFT then only has to
    # make it pick <|im_end|> after an assistant turn, which a short LoRA run manages.
    ends = [token_id(tokenizer, ENDOFTEXT), token_id(tokenizer, IM_END)]
    need = n_blocks * SEQ_LEN
    stream: list[int] = []
    while len(stream) < need:
        docs = [world.corpus_document(rng) for _ in range(1000)]
        for ids in tokenizer(docs)["input_ids"]:
            stream += ids + [rng.choice(ends)]
    return torch.tensor(stream[:need]).view(n_blocks, SEQ_LEN)


def lr_at(step: int) -> float:
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    progress = (step - WARMUP) / max(1, STEPS - WARMUP)
    return MIN_LR + 0.5 * (LR - MIN_LR) * (1 + math.cos(math.pi * progress))


def train(model: LlamaForCausalLM, blocks: torch.Tensor) -> float:
    """Plain next-token training; returns the mean loss of the last 20 steps."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}], lr=LR, betas=(0.9, 0.95)
    )
    model.train()
    losses: list[float] = []
    start = time.time()
    for step in range(STEPS):
        batch = blocks[step * BATCH_SIZE : (step + 1) * BATCH_SIZE]
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step)
        loss = model(input_ids=batch, labels=batch).loss  # the model shifts labels itself
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if step % 100 == 0 or step == STEPS - 1:
            print(f"step {step:4d}  loss {loss.item():.3f}  lr {lr_at(step):.2e}  {time.time() - start:.0f}s")
    return sum(losses[-20:]) / 20


@torch.no_grad()
def greedy(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase, prompts: list[str], n: int) -> list[str]:
    model.eval()
    batch = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")
    out = model.generate(**batch, max_new_tokens=n, do_sample=False)
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def world_accuracy(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
    """Greedy accuracy on every fact ('The zorb lives in the' -> ' forest.') and on the common and
    the rare part of the arithmetic table ('7 + 5 =' -> ' 12.')."""
    world = World()
    cases = {
        "facts": [(f.statement().rsplit(" ", 1)[0], f" {f.value}.") for f in world.facts],
        "common arithmetic": [(p.equation().rsplit(" ", 1)[0], f" {p.result}.") for p in world.problems],
        "rare arithmetic": [(p.equation().rsplit(" ", 1)[0], f" {p.result}.") for p in world.hard_problems],
    }
    scores = {}
    for name, pairs in cases.items():
        completions = greedy(model, tokenizer, [prompt for prompt, _ in pairs], n=4)
        scores[name] = sum(c.startswith(want) for c, (_, want) in zip(completions, pairs)) / len(pairs)
    return scores


def show_samples(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerBase) -> None:
    prompts = ["7 + 5 =", "9 * 8 =", "12 - 7 =", "The zorb lives in the", "The flim eats"]
    for prompt, completion in zip(prompts, greedy(model, tokenizer, prompts, n=12)):
        print(f"  {prompt!r} -> {completion!r}")


def main() -> None:
    torch.set_num_threads(THREADS)
    torch.manual_seed(SEED)
    tokenizer = AutoTokenizer.from_pretrained(OUT_DIR)
    model = LlamaForCausalLM(model_config(tokenizer))
    model.generation_config = generation_config(tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e6:.2f}M parameters; {STEPS} steps x {BATCH_SIZE} x {SEQ_LEN} tokens")
    start = time.time()
    final_loss = train(model, corpus_blocks(tokenizer, STEPS * BATCH_SIZE))
    print(f"pretrained in {time.time() - start:.0f}s; final loss {final_loss:.3f}")
    scores = world_accuracy(model, tokenizer)
    print("greedy accuracy: " + ", ".join(f"{name} {score:.1%}" for name, score in scores.items()))
    show_samples(model, tokenizer)
    model.save_pretrained(OUT_DIR)
    print(f"saved -> {OUT_DIR}")


if __name__ == "__main__":
    main()
