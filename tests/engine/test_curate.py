"""Curate -> DPO in rounds on the bundled tiny 4-bit model: each round samples from the model the last
one trained, keeps what its thresholds allow (counted), and the next stage trains on exactly that; a
curate stage that keeps nothing stops the run at the stage that needed it, with one line (exit 2)."""

from __future__ import annotations

import json
import math

import pytest

from smoltrain.config.presets import PRESETS_DIR
from tests.conftest import train_in_process

pytestmark = pytest.mark.slow
PROMPTS = 6
# The length reward pays short answers: sampled answers of any model differ in length, so pairs have spread.
QUICK = [
    "stages[0].train.max_steps=2", "stages[0].data.max_rows=16", "stages[1].data.max_rows=6",
    "stages[2].train.max_steps=2", "stages[2].train.micro_batch_size=2", "curate.samples=4",
    "curate.max_completion_length=8", "curate.batch_size=8", 'curate.rewards=[{name = "length", max_chars = 16}]',
    "curate.min_score=-0.5", "eval.limit=4", "eval.max_new_tokens=4",
]  # fmt: skip


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_rounds_of_curate_then_dpo_train_on_what_each_round_kept(tmp_path):
    run = train_in_process(PRESETS_DIR / "demo-curate.toml", tmp_path, QUICK)
    failed = run.of_type("run_failed")
    assert run.exit_code == 0, failed[0].message if failed else ""
    assert [s.technique for s in run.of_type("stage_started")] == ["sft", "curate", "dpo", "curate", "dpo"]
    assert run.of_type("run_started")[0].stages == ["sft", "round-1-curate", "round-1-dpo", "round-2-curate", "round-2-dpo"]
    curated = run.of_type("curated")
    dpo_starts = [s for s in run.of_type("stage_started") if s.technique == "dpo"]
    for round_number, (summary, dpo) in enumerate(zip(curated, dpo_starts), start=1):
        folder = run.run_dir / "stages" / f"round-{round_number}-curate" / "curated"
        assert summary.folder == str(folder)
        groups, pairs, sft = _lines(folder / "groups.jsonl"), _lines(folder / "pairs.jsonl"), _lines(folder / "sft.jsonl")
        assert len(groups) == summary.prompts == PROMPTS and all(len(g["answers"]) == 4 for g in groups)
        assert summary.pairs + summary.no_spread + summary.below_margin == PROMPTS
        assert len(pairs) == summary.pairs > 0 and len(sft) == summary.sft_rows
        assert summary.sft_rows + summary.below_min_score == PROMPTS
        for pair in pairs:
            assert pair["score_chosen"] > pair["score_rejected"]
            assert pair["chosen"][0]["role"] == "assistant" and pair["prompt"][-1]["role"] == "user"
        best = [max(g["totals"]) for g in groups]
        assert sorted(row["score"] for row in sft) == sorted(b for b in best if b >= -0.5)
        # The round's DPO trains on this round's pairs, all of them (eval_fraction 0), from this round's model.
        assert f"round-{round_number}-curate/curated/pairs.jsonl" in dpo.data and dpo.train_rows == summary.pairs
    starts = {s.technique + str(s.stage): s.model for s in run.of_type("stage_started")}
    assert starts["curate3"].endswith("round-1-dpo/merged")  # round 2 samples from round 1's DPO model
    assert starts["curate1"].endswith("stages/sft/merged")
    curate_metrics = [m.values for m in run.of_type("metrics") if m.stage == 1]
    assert curate_metrics and "rewards/length/mean" in curate_metrics[-1] and "frac_reward_zero_std" in curate_metrics[-1]
    assert {s.label for s in run.of_type("sample") if s.stage == 1} == {"best", "worst"}
    scored = {e.subject for e in run.of_type("eval_result")}
    assert {"sft", "round-1-dpo", "round-2-dpo"} <= scored


def test_a_curate_stage_that_keeps_nothing_stops_the_stage_that_needs_it(tmp_path):
    run = train_in_process(PRESETS_DIR / "demo-curate.toml", tmp_path,
                           [*QUICK, "curate.min_margin=100", "rounds.times=1"])  # fmt: skip
    assert run.exit_code == 2
    failed = run.of_type("run_failed")[0]
    assert "data.curated: curate stage 'round-1-curate' kept no pairs" in failed.message
    assert "curate.min_margin" in failed.message + failed.hint
    assert [s.technique for s in run.of_type("stage_started")] == ["sft", "curate"]
    assert run.of_type("curated")[0].below_margin + run.of_type("curated")[0].no_spread == PROMPTS


def test_a_stopped_curate_resumes_after_its_last_batch_and_keeps_what_a_whole_run_would(tmp_path):
    from smoltrain import runner
    from smoltrain.config.load import load_config, stage_configs, validate_config
    from smoltrain.config.pipeline import curate_only
    from smoltrain.engine.control import StopFlag
    from smoltrain.engine.events import Metrics
    from smoltrain.engine.run import run

    overrides = [f"output_dir={tmp_path}", "stages[1].data.max_rows=6", "curate.samples=4", "curate.batch_size=8",
                 "curate.max_completion_length=8", 'curate.rewards=[{name = "length", max_chars = 16}]']  # fmt: skip
    _, raw = curate_only(stage_configs(load_config(PRESETS_DIR / "demo-curate.toml", overrides)))
    cfg = validate_config(raw, "test")  # 6 prompts, 2 a batch: 3 batches

    def curate(name: str, stop_at: int | None = None, resume: bool = False) -> list[str]:
        run_dir = tmp_path / name if resume else runner.create_run_dir(cfg, name)
        stop = StopFlag()

        def emit(event) -> None:
            if isinstance(event, Metrics) and event.step == stop_at:
                stop.requested = True

        run(cfg, run_dir, emit, stop, resume=resume)
        return (run_dir / "curated" / "groups.jsonl").read_text().splitlines()

    whole = curate("whole")
    assert len(curate("stopped", stop_at=2)) == 4  # two whole batches written, the third never started
    assert curate("stopped", resume=True) == whole
    assert (tmp_path / "stopped" / "curated" / "pairs.jsonl").read_text() == (tmp_path / "whole" / "curated" / "pairs.jsonl").read_text()


FAMILY_PIPELINE = """
[model]
name_or_path = "MODEL"
[train]
max_length = 128
micro_batch_size = 2
grad_accum = 1
max_steps = 1
logging_steps = 1
save_steps = 100
[[stages]]
name = "curate"
technique = "curate"
data = {{ path = "{prompts}", max_rows = 4, eval_fraction = 0 }}
curate = {{ samples = 4, max_completion_length = 12, batch_size = 16, rewards = [{{ name = "length", max_chars = 24 }}] }}
[[stages]]
name = "sft-own"
technique = "sft"
data = {{ curated = "curate", eval_fraction = 0 }}
[[stages]]
name = "dpo-own"
technique = "dpo"
data = {{ curated = "curate", eval_fraction = 0 }}
"""


@pytest.mark.parametrize("name", ["llama-3.2", "gemma-2", "mistral-v0.3"])
def test_curated_answers_train_in_each_familys_own_template(name, family_model, tmp_path):
    """The model's own answers, written as assistant turns after the prompt's turns (a system turn the
    template refuses is folded, as anywhere), train SFT and DPO under the family's real chat template."""
    preset = tmp_path / "p.toml"
    preset.write_text(FAMILY_PIPELINE.format(prompts=PRESETS_DIR.parent / "assets" / "data" / "grpo.jsonl")
                      .replace("MODEL", str(family_model(name))))  # fmt: skip
    run = train_in_process(preset, tmp_path)
    failed = run.of_type("run_failed")
    assert run.exit_code == 0, failed[0].message if failed else ""
    assert [s.technique for s in run.of_type("stage_started")] == ["curate", "sft", "dpo"]
    curated = run.of_type("curated")[0]
    sft, dpo = run.of_type("stage_started")[1:]
    assert sft.train_rows == curated.sft_rows == 4 and dpo.train_rows == curated.pairs > 0
    assert all(math.isfinite(m.values["loss"]) for m in run.of_type("metrics") if "loss" in m.values)
