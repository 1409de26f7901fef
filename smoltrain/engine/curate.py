"""Curate: best-of-K answers and on-policy preference pairs, sampled from the current model.

For every prompt of the stage's data, `curate.samples` (K) answers come from the current policy (the
base, or the merge an earlier stage left) at `curate.temperature`, and the stage's rewards score
them (the weighted total, as GRPO adds them: a reward that does not apply adds nothing). Then:

- best-of-K (rejection sampling) SFT data: each prompt's best answer, kept if it scores at least
  `curate.min_score`;
- on-policy DPO pairs: each prompt's best answer as chosen and its worst as rejected, kept if their
  scores differ by more than `curate.min_margin`; a prompt whose K answers all score the same
  teaches no preference and is dropped, and counted.

Everything goes to the stage's `curated/` folder (rundir.StagePaths): `groups.jsonl` holds every
answer with its scores and is appended batch by batch, so a stopped or killed run resumes after the
last batch written (each batch samples from its own seed: a resumed curate keeps what the whole run
would have); `sft.jsonl` and `pairs.jsonl` are written at the end, with `summary.json`. A later stage
reads one of them with `data.curated` (engine/run.py). The run's events: stage_started (one step per
generation batch), metrics per batch (reward, reward_std, rewards/<fn>/mean, frac_reward_zero_std,
as GRPO logs them), the best and worst answer of a batch as sample events, and one `curated` event
with the score distribution and the counts.

More than one process: rank 0 curates while the others wait (engine/run.py); sampling is
generation, not training, and the files are written once.

Runs in the worker. Imports torch; never textual.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smoltrain.engine.events import Curated, Metrics, RunStarted, Sample, StageFinished, StageStarted, Warning
from smoltrain.engine.generate import Prompt, generate_batch
from smoltrain.engine.samples import shown
from smoltrain.engine.techniques.rewards import RewardSet, build_reward_functions

if TYPE_CHECKING:
    from smoltrain.engine.run import StageJob


@dataclass
class Group:
    """One prompt's K answers, each with its weighted total and every reward's own score."""

    prompt: Prompt
    answers: list[str]
    totals: list[float]
    rewards: dict[str, list[float | None]]

    @property
    def best(self) -> int:
        return max(range(len(self.totals)), key=lambda i: self.totals[i])

    @property
    def worst(self) -> int:
        return min(range(len(self.totals)), key=lambda i: self.totals[i])


def curate(job: StageJob) -> tuple[int, bool]:
    """Sample, score and keep; returns (batches done, whether every prompt was curated)."""
    from smoltrain.engine.chat import load_plain_model

    cfg, emit, paths = job.cfg, job.emit, job.paths
    spec = cfg.curate
    prompts, columns = _prompts_and_columns(job)
    model, tokenizer = load_plain_model(cfg.model, cfg.quantization)
    device = str(model.device.type)
    rewards = build_reward_functions(cfg.curate_rewards, resolve_model=job.resolve_model, device=device, emit=emit,
                                     key=cfg.curate_rewards_key)  # fmt: skip
    active = {"curate": f"{spec.samples} answers per prompt at temperature {spec.temperature:g}, scored by "
                        + ", ".join(f"{n} x{w:g}" for n, w in zip(rewards.names, rewards.weights)),
              "kept": _kept_words(spec.min_score, spec.min_margin)}  # fmt: skip
    if job.run_started is not None:
        total = sum(p.numel() for p in model.parameters())
        emit(RunStarted(**job.run_started, device=device, dtype=str(next(model.parameters()).dtype).removeprefix("torch."),
                        active=active, trainable_params=0, total_params=total))  # fmt: skip
    per_batch = max(1, spec.batch_size // spec.samples)
    batches = -(-len(prompts) // per_batch)
    emit(StageStarted(stage=job.index, technique="curate", model=job.starts_from or cfg.model.name_or_path,
                      active=active, max_steps=batches, train_rows=len(prompts), eval_rows=0,
                      data=job.data.report.summary()))  # fmt: skip
    paths.curated.mkdir(parents=True, exist_ok=True)
    groups = _groups_written(paths.curated / "groups.jsonl", per_batch) if job.resume else []
    _rewrite(paths.curated / "groups.jsonl", groups)
    done = len(groups) // per_batch
    for batch in range(done, batches):
        if job.stop.requested:
            return batch, False
        chosen = range(batch * per_batch, min(len(prompts), (batch + 1) * per_batch))
        new = _sample_and_score(model, tokenizer, [prompts[i] for i in chosen],
                                {c: [v[i] for i in chosen] for c, v in columns.items()}, rewards, cfg, seed=batch)  # fmt: skip
        _append(paths.curated / "groups.jsonl", new)
        groups += new
        emit(Metrics(step=batch + 1, max_steps=batches, stage=job.index, **_batch_metrics(new, rewards.names)))
        if batch % cfg.train.logging_steps == 0 or batch == batches - 1:
            _emit_samples(job, new, batch + 1)
    summary = _keep(groups, spec.min_score, spec.min_margin, paths.curated)
    emit(Curated(stage=job.index, samples=spec.samples, folder=str(paths.curated), **summary))
    if not summary["sft_rows"] and not summary["pairs"]:
        emit(Warning(message=f"curate kept nothing from {len(groups)} prompts (every best answer under curate.min_score, "
                             "and no answers of one prompt scored apart)",
                     hint="lower curate.min_score or curate.min_margin, raise curate.samples or the temperature, or "
                          "train the model more first"))  # fmt: skip
    emit(StageFinished(stage=job.index, technique="curate", step=batches, output_dir=str(paths.curated)))
    return batches, True


def _prompts_and_columns(job: StageJob) -> tuple[list[Prompt], dict[str, list[Any]]]:
    """Every prompt of the stage's data (the held-out ones too: curate trains nothing, it has nothing to
    hold out), with the other columns the rewards read."""
    rows = [*job.data.train] + ([*job.data.eval] if job.data.eval is not None else [])
    names = [c for c in job.data.train.column_names if c != "prompt"]
    return [r["prompt"] for r in rows], {c: [r[c] for r in rows] for c in names}


def _sample_and_score(model: Any, tokenizer: Any, prompts: list[Prompt], columns: dict[str, list[Any]],
                      rewards: RewardSet, cfg: Any, seed: int) -> list[Group]:  # fmt: skip
    spec, k = cfg.curate, cfg.curate.samples
    asked = [p for p in prompts for _ in range(k)]
    answers = generate_batch(model, tokenizer, asked, spec.max_completion_length, batch_size=spec.batch_size,
                             temperature=spec.temperature, seed=cfg.train.seed + seed)  # fmt: skip
    # As TRL calls a reward: conversational prompts get their completion as an assistant turn.
    completions: list[Any] = [a if isinstance(p, str) else [{"role": "assistant", "content": a}]
                              for p, a in zip(asked, answers)]  # fmt: skip
    repeated = {c: [v for v in values for _ in range(k)] for c, values in columns.items()}
    scores: dict[str, list[float | None]] = {}
    for name, fn in zip(rewards.names, rewards.functions):
        scores[name] = [None if v is None else float(v) for v in fn(prompts=asked, completions=completions, **repeated)]
    totals = [sum(w * (scores[n][i] or 0.0) for n, w in zip(rewards.names, rewards.weights)) for i in range(len(asked))]
    return [Group(prompt=p, answers=answers[j * k : (j + 1) * k], totals=totals[j * k : (j + 1) * k],
                  rewards={n: s[j * k : (j + 1) * k] for n, s in scores.items()}) for j, p in enumerate(prompts)]  # fmt: skip


def _batch_metrics(groups: list[Group], names: Sequence[str]) -> dict[str, float]:
    totals = [t for g in groups for t in g.totals]
    out = {
        "reward": statistics.fmean(totals),
        "reward_std": statistics.fmean(statistics.pstdev(g.totals) for g in groups),
        "frac_reward_zero_std": sum(max(g.totals) == min(g.totals) for g in groups) / len(groups),
    }
    for name in names:
        scored = [v for g in groups for v in g.rewards[name] if v is not None]
        if scored:
            out[f"rewards/{name}/mean"] = statistics.fmean(scored)
    return out


def _emit_samples(job: StageJob, groups: list[Group], step: int) -> None:
    """The batch's best and worst answer to its first prompt whose answers scored apart (else its first)."""
    group = next((g for g in groups if max(g.totals) > min(g.totals)), groups[0])
    for label, i in (("best", group.best), ("worst", group.worst)):
        job.emit(Sample(step=step, stage=job.index, prompt=shown(group.prompt), completion=group.answers[i],
                        reward=group.totals[i], label=label,
                        rewards={n: s[i] for n, s in group.rewards.items() if s[i] is not None}))  # fmt: skip


def _keep(groups: list[Group], min_score: float | None, min_margin: float, folder: Path) -> dict[str, Any]:
    """sft.jsonl and pairs.jsonl from every prompt's answers, summary.json, and the counts."""
    sft, pairs = [], []
    below_min = no_spread = below_margin = 0
    for g in groups:
        best, worst = g.best, g.worst
        if min_score is None or g.totals[best] >= min_score:
            sft.append({"prompt": g.prompt, "completion": _answer(g.prompt, g.answers[best]), "score": g.totals[best]})
        else:
            below_min += 1
        gap = g.totals[best] - g.totals[worst]
        if gap <= 0:
            no_spread += 1
        elif gap <= min_margin:
            below_margin += 1
        else:
            pairs.append({"prompt": g.prompt, "chosen": _answer(g.prompt, g.answers[best]),
                          "rejected": _answer(g.prompt, g.answers[worst]),
                          "score_chosen": g.totals[best], "score_rejected": g.totals[worst]})  # fmt: skip
    _rewrite_rows(folder / "sft.jsonl", sft)
    _rewrite_rows(folder / "pairs.jsonl", pairs)
    totals = sorted(t for g in groups for t in g.totals)
    quartiles = statistics.quantiles(totals, n=4, method="inclusive") if len(totals) > 1 else totals * 3
    summary = {
        "prompts": len(groups),
        "scores": {"mean": statistics.fmean(totals), "min": totals[0], "p25": quartiles[0], "median": quartiles[1],
                   "p75": quartiles[2], "max": totals[-1]} if totals else {},
        "sft_rows": len(sft), "below_min_score": below_min,
        "pairs": len(pairs), "no_spread": no_spread, "below_margin": below_margin,
    }  # fmt: skip
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _answer(prompt: Prompt, text: str) -> Any:
    """An answer in the prompt's own form: an assistant turn after chat turns, plain text after text."""
    return text if isinstance(prompt, str) else [{"role": "assistant", "content": text}]


def _kept_words(min_score: float | None, min_margin: float) -> str:
    best = "every prompt's best answer" if min_score is None else f"best answers scoring >= {min_score:g}"
    return f"{best} (sft.jsonl); best vs worst differing by > {min_margin:g} (pairs.jsonl)"


# --- groups.jsonl ---------------------------------------------------------------------------------


def _group_json(g: Group) -> str:
    return json.dumps({"prompt": g.prompt, "answers": g.answers, "totals": g.totals, "rewards": g.rewards},
                      ensure_ascii=False)  # fmt: skip


def _append(path: Path, groups: list[Group]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write("".join(_group_json(g) + "\n" for g in groups))  # one write per batch


def _rewrite(path: Path, groups: list[Group]) -> None:
    path.write_text("".join(_group_json(g) + "\n" for g in groups), encoding="utf-8")


def _rewrite_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    partial = path.with_suffix(".jsonl.partial")
    partial.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    partial.replace(path)


def _groups_written(path: Path, per_batch: int) -> list[Group]:
    """The whole batches a stopped run wrote (a line cut off by a kill, and the rest of its batch, are
    sampled again)."""
    groups = []
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        try:
            d = json.loads(line)
            groups.append(Group(prompt=d["prompt"], answers=d["answers"], totals=d["totals"], rewards=d["rewards"]))
        except (ValueError, KeyError, TypeError):
            break
    return groups[: len(groups) // per_batch * per_batch]
