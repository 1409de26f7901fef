"""Rebuild every demo asset from scratch: tokenizer, pretrained tiny model, datasets.

    python assets/build/all.py        # about 4 minutes on 2 CPU cores, almost all of it pretraining

Writes assets/tiny-llama/ and assets/data/*.jsonl. Everything is seeded: a rerun gives identical
tokenizer and datasets, and identical weights on the same machine. To check the result trains well
under LoRA SFT, run assets/build/check_sft.py afterwards.
"""

from __future__ import annotations

import time

import demo_data
import pretrain
import tokenizer


def main() -> None:
    start = time.time()
    for step in (tokenizer, pretrain, demo_data):
        print(f"== {step.__name__}")
        step.main()
    print(f"== done in {time.time() - start:.0f}s")


if __name__ == "__main__":
    main()
