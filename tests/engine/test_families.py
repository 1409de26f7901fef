"""The family matrix trains: default chat SFT in 4-bit on every family (its loss falls), and on three
families whose templates differ most (Llama-3.2: no pad token, span-matched mask; Gemma-2: refuses
system turns; Mistral v0.3: drops them, SentencePiece spaces) a whole SFT -> reward -> DPO -> KTO -> GRPO
pipeline on the demo data, whose every row has a system turn.

Runs in this process (tests/conftest.py: train_in_process) to keep the matrix inside CI's budget."""

from __future__ import annotations

import pytest

from smoltrain.config.presets import PRESETS_DIR
from tests.conftest import DEMO_DATA, train_in_process
from tests.families import FAMILIES

pytestmark = pytest.mark.slow

SFT_STEPS = ["train.max_steps=8", "train.learning_rate=1e-2", "train.micro_batch_size=4", "train.logging_steps=1",
             "train.eval_steps=8", "train.save_steps=100", "data.max_rows=64", "train.warmup_ratio=0"]  # fmt: skip

STAGES = [("sft", 32, 0.25), ("reward", 32, 0.25), ("dpo", 32, 0.25), ("kto", 32, 0.25), ("grpo", 16, 0)]  # demo data file, rows, eval
PIPELINE = """
[model]
name_or_path = "MODEL"
[train]
max_length = 128
micro_batch_size = 4
grad_accum = 1
max_steps = 3
logging_steps = 1
eval_steps = 3
save_steps = 100
learning_rate = 5e-3
[grpo]
num_generations = 4
max_completion_length = 8
[[grpo.rewards]]
name = "math_answer"
"""
PIPELINE += "".join(
    f'\n[[stages]]\nname = "{t}"\ntechnique = "{t}"\n'
    f'data = {{ path = "{DEMO_DATA / f"{t}.jsonl"}", max_rows = {rows}, eval_fraction = {held_out} }}\n'
    for t, rows, held_out in STAGES
)


def failure(run) -> str:
    failed = run.of_type("run_failed")
    return failed[0].message if failed else ""


@pytest.mark.parametrize("name", list(FAMILIES))
def test_default_chat_sft_trains_every_family_in_4bit(name, family_model, tmp_path):
    run = train_in_process(PRESETS_DIR / "demo-sft.toml", tmp_path, [f"model.name_or_path={family_model(name)}", *SFT_STEPS])
    assert run.exit_code == 0, failure(run)
    started = run.of_type("run_started")[0]
    assert started.active["4bit"].startswith("on") and started.active["loss_on"] == "assistant turns only"
    assert started.active["text"].startswith("chat template (mask from ")
    losses = run.losses()
    assert len(losses) == 8 and sum(losses[-2:]) < sum(losses[:2]) - 0.1, f"{name}: loss did not fall: {losses}"
    folds = [w.message for w in run.of_type("warning") if "folded" in w.message]
    assert bool(folds) == (FAMILIES[name].system != "kept"), folds


@pytest.mark.parametrize("name", ["llama-3.2", "gemma-2", "mistral-v0.3"])
def test_a_whole_pipeline_trains_on_families_that_handle_system_turns_differently(name, family_model, tmp_path):
    preset = tmp_path / "pipeline.toml"
    preset.write_text(PIPELINE.replace("MODEL", str(family_model(name))))
    run = train_in_process(preset, tmp_path)
    assert run.exit_code == 0, failure(run)
    assert [s.technique for s in run.of_type("stage_started")] == ["sft", "reward", "dpo", "kto", "grpo"]
    assert run.of_type("run_finished")[0].status == "completed"
    evals = {e.stage: e.values for e in run.of_type("eval")}  # the last eval of each stage
    assert "eval_accuracy" in evals[1] and "eval_rewards/margins" in evals[2] and "eval_rewards/margins" in evals[3]
    grpo = [m.values for m in run.of_type("metrics") if m.stage == 4 and "reward" in m.values]
    assert grpo and all("rewards/math_answer/mean" in v for v in grpo)
    # DPO started from the SFT stage's merged model, which kept the family's tokenizer and template.
    merged = run.run_dir / "stages" / "sft" / "merged"
    assert (merged / "tokenizer_config.json").exists()
    assert run.of_type("stage_started")[2].model == str(merged)
    # KTO started from DPO's merge, in the same template.
    assert run.of_type("stage_started")[3].model == str(run.run_dir / "stages" / "dpo" / "merged")


@pytest.mark.parametrize("name", list(FAMILIES))
def test_answers_stop_at_each_familys_end_of_turn(family_model, name):
    """Generation for people (chat, before/after, Try it) stops where the family's template ends a turn,
    and asks in the family's own template: the prompt ends with its assistant header."""
    from transformers import AutoTokenizer

    from smoltrain.engine.generate import prompt_ids, stop_token_ids

    family = FAMILIES[name]
    tokenizer = AutoTokenizer.from_pretrained(family_model(name))
    stops = tokenizer.convert_ids_to_tokens(stop_token_ids(tokenizer))
    assert family.end_of_turn in stops and tokenizer.eos_token in stops
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    asked = tokenizer.decode(prompt_ids(tokenizer, [{"role": "user", "content": "Hi"}]))
    assert asked.replace(" ", "") == rendered.replace(" ", ""), (asked, rendered)  # SentencePiece spaces aside
