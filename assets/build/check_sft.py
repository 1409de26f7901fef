"""Check that the demo assets suit a short LoRA SFT run, the kind `smoltrain demo` starts with.

Trains a rank-16 LoRA on assets/data/sft.jsonl with TRL's SFTTrainer (assistant-only loss, CPU),
prints the held-out eval loss at every eval and how far it fell, answers a few questions with the
adapted model, and scores it on GRPO prompts: greedy, and 4 samples each (GRPO learns only from
prompts whose samples disagree). Not part of all.py; about half a minute on 2 CPU cores:

    python assets/build/check_sft.py [--steps 100] [--lr 5e-4] [--4bit] [--model assets/tiny-llama]
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from datasets import load_dataset
from peft import LoraConfig
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    BatchEncoding,
    BitsAndBytesConfig,
    PreTrainedTokenizerBase,
)
from trl import SFTConfig, SFTTrainer

ASSETS = Path(__file__).resolve().parents[1]
QUESTIONS = ["What is 7 + 5?", "How much is 9 times 8?", "Where does the zorb live?", "What does the flim eat?"]
Chat = list[dict[str, str]]


def keep_cpu_4bit_weights_trainable(model: torch.nn.Module) -> None:
    """bitsandbytes 0.50 on a CPU with AVX512-BF16 repacks a Linear4bit's weight for speed at its
    first eval-mode forward (an eval, a generate); backward through the repacked weight then gives
    wrong gradients while the loss still looks right, so a QLoRA run that evaluates stops learning
    or diverges. Turning the repacking off keeps training correct."""
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def sft(model_dir: Path, steps: int, lr: float, four_bit: bool) -> tuple[Any, PreTrainedTokenizerBase]:
    """Train the LoRA, print the eval losses; returns the adapted model and the tokenizer."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    quantization = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4") if four_bit else None
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, quantization_config=quantization)
    if four_bit:
        keep_cpu_4bit_weights_trainable(model)
    data = load_dataset("json", data_files=str(ASSETS / "data" / "sft.jsonl"), split="train")
    split = data.train_test_split(test_size=200, seed=0)
    with tempfile.TemporaryDirectory() as out_dir:
        config = SFTConfig(
            output_dir=out_dir,
            max_steps=steps,
            per_device_train_batch_size=8,
            per_device_eval_batch_size=50,
            learning_rate=lr,
            lr_scheduler_type="cosine",
            warmup_steps=5,
            max_length=128,
            assistant_only_loss=True,
            eval_strategy="steps",
            eval_steps=max(1, steps // 10),
            eval_on_start=True,
            logging_steps=max(1, steps // 10),
            save_strategy="no",
            report_to="none",
            use_cpu=True,
            bf16=False,
            seed=0,
            disable_tqdm=True,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=split["train"],
            eval_dataset=split["test"],
            processing_class=tokenizer,
            peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"),
        )
        start = time.time()
        trainer.train()
        seconds = time.time() - start

    evals = [(log["step"], log["eval_loss"]) for log in trainer.state.log_history if "eval_loss" in log]
    print("\neval loss by step:", ", ".join(f"{step}: {loss:.3f}" for step, loss in evals))
    # eval_on_start adds step 0; the first eval of a run without it is the second entry.
    for (step_a, loss_a), (step_b, loss_b) in [(evals[0], evals[-1]), (evals[1], evals[-1])]:
        print(f"step {step_a} -> {step_b}: {loss_a:.3f} -> {loss_b:.3f} ({1 - loss_b / loss_a:.0%} lower)")
    print(f"train time {seconds:.0f}s")
    assert trainer.model is not None
    return trainer.model.eval(), tokenizer


@torch.no_grad()
def complete(model: Any, tokenizer: PreTrainedTokenizerBase, prompts: list[Chat], sample: bool = False) -> list[str]:
    """The assistant's replies, with the end token it stopped on (as GRPO's reward functions see it,
    less that token)."""
    tokenizer.padding_side = "left"
    batch = tokenizer.apply_chat_template(
        prompts, add_generation_prompt=True, return_tensors="pt", return_dict=True, padding=True
    )
    assert isinstance(batch, BatchEncoding)
    sampling = {"do_sample": True, "temperature": 1.0, "top_k": None, "top_p": None} if sample else {}
    out = model.generate(**batch, max_new_tokens=24, **sampling)
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :])
    return [t.replace(tokenizer.pad_token, "") for t in texts]


def final_answer(text: str) -> str:
    """The number after a closing '####', as a GRPO reward would read it ('' if none)."""
    match = re.search(r"####\s*(-?\d+)\s*$", re.sub(r"<\|\w+\|>", "", text).strip())
    return match.group(1) if match else ""


def grpo_report(model: Any, tokenizer: PreTrainedTokenizerBase, n: int = 100, group: int = 4) -> None:
    rows = [json.loads(line) for line in (ASSETS / "data" / "grpo.jsonl").read_text().splitlines()[:n]]
    prompts, answers = [r["prompt"] for r in rows], [r["answer"] for r in rows]
    greedy = [final_answer(t) == a for t, a in zip(complete(model, tokenizer, prompts), answers)]
    torch.manual_seed(0)
    samples = [complete(model, tokenizer, prompts, sample=True) for _ in range(group)]
    hits = [sum(final_answer(s[i]) == answers[i] for s in samples) for i in range(n)]
    print(
        f"GRPO prompts: greedy {sum(greedy) / n:.0%} right; sampled {sum(hits) / (n * group):.0%} right; "
        f"{sum(0 < h < group for h in hits) / n:.0%} of groups mixed"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--model", type=Path, default=ASSETS / "tiny-llama")
    parser.add_argument("--4bit", dest="four_bit", action="store_true", help="QLoRA: load the base in 4-bit NF4")
    args = parser.parse_args()
    torch.set_num_threads(2)
    model, tokenizer = sft(args.model, args.steps, args.lr, args.four_bit)
    answers = complete(model, tokenizer, [[{"role": "user", "content": q}] for q in QUESTIONS])
    for question, answer in zip(QUESTIONS, answers):
        print(f"  {question!r} -> {answer!r}")
    grpo_report(model, tokenizer)


if __name__ == "__main__":
    main()
