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


KTO_DATA = PROJECT_ROOT / "assets" / "data" / "kto.jsonl"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_kto_preview_shows_each_labelled_answer_under_each_template(family, family_model):
    """KTO's single answers go through the same prompt/completion split as the pairs: under every family's template
    the trained tokens are the answer (not the question or a folded system turn), and each keeps its label."""
    folder = family_model(family)
    tokenizer = load_tokenizer(ModelSection(name_or_path=str(folder)))
    seen = inspect_data(DataSection(path=str(KTO_DATA), max_rows=20, eval_fraction=0.0), TrainSection(technique="kto"),
                        SftSection(), tokenizer, model=str(folder), show=2)  # fmt: skip
    trained = ["".join(p.text for p in row if p.trained) for row in seen.rows_shown(2)]
    assert "That is a good question." in trained[0] and "6 + 11" not in trained[0], trained
    assert "11 + 3 = 14." in trained[1] and "Answer briefly" not in trained[1], trained
    assert [a["label"] for a in seen.answers[:2]] == [False, True]
    assert len(seen.trained) == 20
