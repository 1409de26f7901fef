"""Check that KTO on the demo's labelled answers learns to tell good answers from bad: held-out reward accuracy.

Trains presets/demo-kto.toml (or reads a finished run), then for held-out preference pairs scores both
answers with KTO's implicit reward, beta * (log pi(answer | prompt) - log ref(answer | prompt)), the
policy being the run's final adapter and the reference the same model with the adapter off, and prints
the share of pairs whose desirable (chosen) answer gets the higher reward. The pairs are
assets/data/dpo.jsonl's whose question appears nowhere in kto.jsonl, so neither answer, nor the
question, was trained on. Not part of all.py; about a minute on 2 CPU cores with the training:

    python assets/build/check_kto.py [RUN_DIR] [--pairs 300]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from smoltrain.engine.chat import find_model, load_model
from smoltrain.engine.data.tokens import RowTokens

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "assets" / "data"


def held_out_pairs(limit: int) -> list[dict[str, Any]]:
    trained = {json.loads(line)["prompt"][-1]["content"] for line in (DATA / "kto.jsonl").open()}
    pairs = [json.loads(line) for line in (DATA / "dpo.jsonl").open()]
    return [p for p in pairs if p["prompt"][-1]["content"] not in trained][:limit]


def answer_logps(model: Any, rows: list[tuple[list[int], list[int]]], pad: int) -> torch.Tensor:
    """Sum of the answer tokens' log-probabilities of each (ids, answer mask), in one padded batch."""
    width = max(len(ids) for ids, _ in rows)
    ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in rows])
    mask = torch.tensor([m + [0] * (width - len(m)) for _, m in rows])
    attention = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in rows])
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    logps = torch.log_softmax(logits, -1).gather(-1, ids[:, 1:, None])[..., 0]
    return (logps * mask[:, 1:]).sum(-1)


def reward_accuracy(run_dir: Path, limit: int, batch: int = 32) -> tuple[float, float, int]:
    """(accuracy, mean reward margin, pairs) of the run's final adapter on the held-out pairs."""
    chat = load_model(find_model(run_dir))
    beta = chat.target.cfg.kto.beta
    tokens = RowTokens(chat.tokenizer)
    rows = [tokens.display({"prompt": p["prompt"], "completion": p[side]}, "unpaired")
            for p in held_out_pairs(limit) for side in ("chosen", "rejected")]  # fmt: skip
    pad = chat.tokenizer.pad_token_id or 0
    rewards = []
    for start in range(0, len(rows), batch):
        part = rows[start : start + batch]
        policy = answer_logps(chat.model, part, pad)
        with chat.model.disable_adapter():
            reference = answer_logps(chat.model, part, pad)
        rewards.append(beta * (policy - reference))
    chosen, rejected = torch.cat(rewards).view(-1, 2).unbind(-1)
    return (chosen > rejected).float().mean().item(), (chosen - rejected).mean().item(), len(chosen)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", nargs="?", type=Path, help="a finished KTO run; default: train presets/demo-kto.toml")
    parser.add_argument("--pairs", type=int, default=300)
    args = parser.parse_args()
    run_dir = args.run_dir
    if run_dir is None:
        name = f"check-kto-{int(time.time())}"
        start = time.time()
        subprocess.run([sys.executable, "-m", "smoltrain", "run", str(ROOT / "presets" / "demo-kto.toml"), "--name", name],
                       check=True, cwd=ROOT)  # fmt: skip
        print(f"demo KTO run: {time.time() - start:.0f}s")
        run_dir = ROOT / "runs" / name
    accuracy, margin, n = reward_accuracy(run_dir, args.pairs)
    print(f"held-out reward accuracy (desirable above undesirable, same prompt): {accuracy:.3f} on {n} pairs; "
          f"mean margin {margin:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
