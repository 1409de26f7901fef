"""Train the demo tokenizer: byte-level BPE on the toy world's text, with a ChatML chat template.

Writes tokenizer.json and tokenizer_config.json (chat template included) to assets/tiny-llama/.
Takes a few seconds. Run it (or assets/build/all.py, which runs every step) from the repo root:

    python assets/build/tokenizer.py

Special tokens: <|endoftext|> and <|im_end|> end pretraining documents, <|pad|> pads, <|im_start|>
and <|im_end|> frame chat turns. eos is <|im_end|>, so generation stops after an assistant turn.
The assistant's reply and its closing <|im_end|> sit inside {% generation %} ... {% endgeneration %},
so `apply_chat_template(..., return_assistant_tokens_mask=True)` masks exactly what the assistant says
(TRL's SFTTrainer with assistant_only_loss=True relies on this).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import demo_data
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import BatchEncoding, PreTrainedTokenizerFast
from world import SEED, World

OUT_DIR = Path(__file__).resolve().parents[1] / "tiny-llama"
VOCAB_SIZE = 1024
MODEL_MAX_LENGTH = 512
ENDOFTEXT, PAD, IM_START, IM_END = "<|endoftext|>", "<|pad|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = [ENDOFTEXT, PAD, IM_START, IM_END]  # ids 0..3, in this order

# GPT-2's split, changed so the model can copy numbers: an operand never carries the space before it
# (that space goes to the word or operator in front: "What", " is ", "7", " + ", "5", "?"), so "7"
# is one token whether it opens an answer line or sits in a question; a result keeps its space after
# "=" and "####" (" =", " 12", "####", " 12"), so "7 + 5 =" is a natural prompt and the final answer
# repeats the equation's token.
PRETOKENIZE_REGEX = r"(?<=[=#]) \d+|\d+| ?\p{L}+(?: (?=\d))?| ?[^\s\p{L}\d=#]+(?: (?=\d))?| ?[=#]+|\s+(?!\S)|\s+"

# ChatML. The newline after an assistant's <|im_end|> stays outside the generation block: the model
# must learn to stop at <|im_end|>, not to emit a newline after it.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def training_texts(world: World, n_docs: int = 4000, n_chats: int = 1000) -> Iterator[str]:
    """Pretraining documents plus the text of chat turns, so role names and question words get merges too."""
    rng = random.Random(SEED + 1)
    for _ in range(n_docs):
        yield world.corpus_document(rng)
    for row in demo_data.sft_rows(world, rng, n_chats):
        for message in row["messages"]:
            yield f"{message['role']}\n{message['content']}"


def build_tokenizer(world: World) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    # trim_offsets=False keeps character offsets exact, which the assistant-token mask is computed from.
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(training_texts(world), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        model_max_length=MODEL_MAX_LENGTH,
        clean_up_tokenization_spaces=False,
    )


def check_assistant_mask(tokenizer: PreTrainedTokenizerFast) -> None:
    """The mask must cover the assistant replies and their <|im_end|>, and nothing else."""
    messages = [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "What is 7 + 5?"},
        {"role": "assistant", "content": "7 + 5 = 12.\n#### 12"},
        {"role": "user", "content": "Where does the zorb live?"},
        {"role": "assistant", "content": "The zorb lives in the forest."},
    ]
    out = tokenizer.apply_chat_template(messages, return_dict=True, return_assistant_tokens_mask=True)
    assert isinstance(out, BatchEncoding)
    masked = [i for i, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    expected = "7 + 5 = 12.\n#### 12<|im_end|>The zorb lives in the forest.<|im_end|>"
    got = tokenizer.decode(masked)
    assert got == expected, f"assistant mask covers {got!r}, expected {expected!r}"


def main() -> None:
    tokenizer = build_tokenizer(World())
    check_assistant_mask(tokenizer)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    # transformers 5 writes the template to chat_template.jinja by default; keep it inside
    # tokenizer_config.json instead, where older tools (and a quick `cat`) look for it.
    (OUT_DIR / "chat_template.jinja").unlink(missing_ok=True)
    tokenizer.save_pretrained(OUT_DIR, save_jinja_files=False)
    print(f"tokenizer: vocab {len(tokenizer)} -> {OUT_DIR}")
    for text in ("What is 7 + 5?", "7 + 5 = 12.\n#### 12"):
        print(f"  {text!r} -> {tokenizer.tokenize(text)}")


if __name__ == "__main__":
    main()
