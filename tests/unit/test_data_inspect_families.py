"""What the wizard's preview and `smoltrain data` show of preference pairs, on the family matrix: the
chosen and the rejected answer each as its trainer tokenizes it, under each family's real chat template
(Gemma and Mistral refuse system turns, which are folded)."""

from __future__ import annotations

import pytest

from smoltrain.config.presets import PROJECT_ROOT
from smoltrain.config.schema import DataSection, ModelSection, SftSection, TrainSection
from smoltrain.engine.data.inspect import inspect_data
from smoltrain.engine.model import load_tokenizer
from tests.families import FAMILIES

DPO_DATA = PROJECT_ROOT / "assets" / "data" / "dpo.jsonl"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_preference_preview_shows_chosen_and_rejected_under_each_template(family, family_model):
    folder = family_model(family)
    tokenizer = load_tokenizer(ModelSection(name_or_path=str(folder)))
    seen = inspect_data(DataSection(path=str(DPO_DATA), max_rows=20, eval_fraction=0.0), TrainSection(technique="dpo"),
                        SftSection(), tokenizer, model=str(folder), show=2, rejected=True)  # fmt: skip
    chosen = ["".join(p.text for p in row if p.trained) for row in seen.rows_shown(2)]
    rejected = ["".join(p.text for p in row if p.trained) for row in seen.rejected_shown(2)]
    assert "The glim is purple." in chosen[0] and "I don't know." in rejected[0], (chosen, rejected)
    assert "The snod's friend is the pell." in chosen[1] and "That is a good question." in rejected[1]
    assert "glim is purple" not in rejected[0], "the rejected row is the rejected answer, not the chosen again"
    assert len(seen.rejected_trained) == len(seen.trained) == 20
