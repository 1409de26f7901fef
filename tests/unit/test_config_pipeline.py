"""[rounds] and data.curated: stages that name other stages. Rounds unroll into their own stages, each
round's references point at its own copies, and every mistake names its key."""

from __future__ import annotations

import pytest

from smoltrain.config.load import load_config, stage_configs, validate_config
from smoltrain.config.pipeline import curate_only
from smoltrain.config.presets import PRESETS_DIR
from smoltrain.errors import ConfigError

PRESET = PRESETS_DIR / "demo-curate.toml"


def test_rounds_unroll_with_each_round_reading_its_own_curate_stage():
    stages = stage_configs(load_config(PRESET, ["rounds.times=3"]))
    names = [n for n, _ in stages]
    assert names == ["sft", *[f"round-{k}-{s}" for k in (1, 2, 3) for s in ("curate", "dpo")]]
    for k in (1, 2, 3):
        assert dict(stages)[f"round-{k}-dpo"].data.curated == f"round-{k}-curate"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (['rounds.stages=["curate", "nope"]'], "rounds.stages[1]: 'nope' is not a stage of this pipeline"),
        (['rounds.stages=["sft", "dpo"]'], "are not consecutive stages"),
        (['stages[2].data.curated="sft"'], "/demo-curate.toml: stages[2].data.curated: 'sft' is a sft stage, not a curate stage"),
        (['stages[2].data.curated="nope"'], "stages[2].data.curated: 'nope' is not an earlier stage"),
        (['stages[2].data={path = "x.jsonl", curated = "curate"}'], "give data.path or data.curated, not both"),
        (["stages[1].data.max_rows=0"], "stages[1].data.max_rows=0: must be at least 1 (got 0)\n"),
        (['curate.rewards=[]', 'grpo.rewards=[]'], "curate needs a reward to choose the best answer"),
    ],
)
def test_mistakes_name_their_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_config(PRESET, overrides)
    assert message in err.value.render()


def test_curated_data_in_a_run_without_stages_is_refused(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[model]\nname_or_path = "m"\n[train]\ntechnique = "dpo"\n[data]\ncurated = "curate"\n')
    with pytest.raises(ConfigError, match="data.curated: names pipeline stages, and this preset has no"):
        load_config(path)


def test_smoltrain_curate_takes_the_first_curate_stage_or_a_grpo_presets_prompts():
    name, raw = curate_only(stage_configs(load_config(PRESET)))
    cfg = validate_config(raw, "x")
    assert name == "round-1-curate" and cfg.train.technique == "curate" and not cfg.stages and cfg.rounds is None
    assert cfg.data.path.endswith("grpo.jsonl") and cfg.curate.samples == 8
    name, raw = curate_only(stage_configs(load_config(PRESETS_DIR / "grpo-qwen2.5-1.5b-gsm8k.toml")))
    cfg = validate_config(raw, "x")
    assert cfg.train.technique == "curate" and [r.name for r in cfg.curate_rewards] == [r.name for r in cfg.grpo.rewards]


def test_a_curate_stage_names_the_table_its_rewards_come_from():
    own = dict(stage_configs(load_config(PRESET)))["round-1-curate"]
    assert own.curate_rewards_key == "curate.rewards" and [r.name for r in own.curate_rewards] == ["math_answer"]
    borrowed = dict(stage_configs(load_config(PRESET, ["curate.rewards=[]", 'grpo.rewards=[{name = "json"}]'])))["round-1-curate"]
    assert borrowed.curate_rewards_key == "grpo.rewards" and [r.name for r in borrowed.curate_rewards] == ["json"]
