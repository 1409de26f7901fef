"""The assistant mask on every family of the matrix: the answers and their end-of-turn token are trained,
nothing of the system or user turns or the role headers is; where TRL has a training template, the mask is
the one TRL's own SFTTrainer builds. Tokenizers only (no training): fast."""

from __future__ import annotations

import re

import pytest
from transformers import AutoTokenizer

from smoltrain.engine.data.chat_template import FOLDED_DROPPED, FOLDED_REFUSED, ChatTemplate
from smoltrain.engine.data.convert import RowRejected
from tests.families import FAMILIES

SYSTEM = "You are a terse tutor."
Q1, A1 = "What is 2 + 3?", "2 + 3 = 5.\n#### 5"
Q2, A2 = "And the glim?", "The glim is purple."
SINGLE = [{"role": "user", "content": Q1}, {"role": "assistant", "content": A1}]
MULTI = [{"role": "system", "content": SYSTEM}, *SINGLE, {"role": "user", "content": Q2}, {"role": "assistant", "content": A2}]
# Template text a training mask must never contain (role headers and the turn openers of every family).
HEADERS = ("<|start_header_id|>", "<|im_start|>", "<start_of_turn>", "[INST]", "[/INST]", "<|user|>",
           "<|assistant|>", "<|system|>", "assistant", "model\n")  # fmt: skip


def squash(text: str) -> str:
    """Text without whitespace: SentencePiece-style decoding of pieces moves spaces around."""
    return re.sub(r"\s+", "", text)


def trained_runs(tokenizer, ids: list[int], mask: list[int]) -> list[str]:
    """The decoded text of each run of trained tokens."""
    runs, current = [], []
    for token, flag in zip(ids, mask):
        if flag:
            current.append(token)
        elif current:
            runs.append(tokenizer.decode(current))
            current = []
    if current:
        runs.append(tokenizer.decode(current))
    return runs


@pytest.fixture(scope="module")
def tokenizer_of(family_model):
    cache = {}

    def load(name: str):
        if name not in cache:
            cache[name] = AutoTokenizer.from_pretrained(family_model(name))
        return cache[name]

    return load


def template_of(tokenizer, force_span_matching: bool):
    template = ChatTemplate(tokenizer)
    if force_span_matching:
        template._by_markers = False  # the path templates without markers take, tried on every family
    return tokenizer, template


def expected_run(name: str, answer: str, last: bool, template: ChatTemplate) -> str:
    """Qwen3's own template opens the last answer with an empty think block; TRL's training copy of it
    (prefix-preserving) opens every answer so."""
    every_turn = template._by_markers
    prefix = "<think></think>" if name == "qwen3" and (last or every_turn) else ""
    return squash(prefix + answer + FAMILIES[name].end_of_turn)


def strip_template_tail(name: str, run: str) -> str:
    """TRL's Phi-3 training copy also trains the EOS that its template writes after the last turn."""
    return run.removesuffix("<|endoftext|>") if name == "phi-3" else run


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("force_span_matching", [False, True], ids=["as-trained", "span-matching"])
def test_single_turn_trains_the_answer_and_its_end_of_turn_only(name, force_span_matching, tokenizer_of):
    tokenizer, template = template_of(tokenizer_of(name), force_span_matching)
    ids, mask = template.tokenize(SINGLE)
    runs = [strip_template_tail(name, squash(r)) for r in trained_runs(tokenizer, ids, mask)]
    assert runs == [expected_run(name, A1, last=True, template=template)], (template.mask_source, runs)
    eot_id = tokenizer.convert_tokens_to_ids(FAMILIES[name].end_of_turn)
    assert mask[len(ids) - 1 - ids[::-1].index(eot_id)] == 1, "the end-of-turn token must be trained (or it never stops)"


@pytest.mark.parametrize("name", list(FAMILIES))
@pytest.mark.parametrize("force_span_matching", [False, True], ids=["as-trained", "span-matching"])
def test_multi_turn_with_a_system_turn_trains_both_answers_and_no_prompt(name, force_span_matching, tokenizer_of):
    tokenizer, template = template_of(tokenizer_of(name), force_span_matching)
    turns, fix = template.fit(MULTI)
    ids, mask = template.tokenize(turns)
    runs = [strip_template_tail(name, squash(r)) for r in trained_runs(tokenizer, ids, mask)]
    assert runs == [expected_run(name, A1, last=False, template=template),
                    expected_run(name, A2, last=True, template=template)], runs
    trained = "".join(runs)
    for prompt_text in (SYSTEM, Q1, Q2, *HEADERS):
        assert squash(prompt_text) not in trained, f"{prompt_text!r} is trained"
    # The system text still reaches the model: kept where it was, or folded into the first user turn.
    untrained = tokenizer.decode([t for t, m in zip(ids, mask) if not m])
    assert squash(SYSTEM) in squash(untrained)
    assert fix == {"kept": None, "refused": FOLDED_REFUSED, "dropped": FOLDED_DROPPED}[FAMILIES[name].system]


@pytest.mark.parametrize("name", ["qwen3", "qwen2.5", "gemma-3", "gemma-2", "phi-3"])
def test_where_trl_has_a_training_template_the_mask_is_the_one_sft_trainer_builds(name, tokenizer_of, family_model):
    """TRL's SFTTrainer with assistant_only_loss on the raw chats vs smoltrain's tokenized rows."""
    import datasets
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    tokenizer = tokenizer_of(name)
    template = ChatTemplate(tokenizer)
    assert template.mask_source == "TRL's training copy of this template"
    chats = [template.fit(MULTI)[0], SINGLE]
    args = SFTConfig(output_dir="/tmp/unused", assistant_only_loss=True, report_to="none", use_cpu=True,
                     max_length=None, dataset_num_proc=None)  # fmt: skip
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(family_model(name)), args=args,
                         train_dataset=datasets.Dataset.from_list([{"messages": c} for c in chats]),
                         processing_class=tokenizer)  # fmt: skip
    theirs = [(row["input_ids"], row["labels"]) for row in trainer.train_dataset]
    ours = []
    for chat in chats:
        ids, mask = template.tokenize(chat)
        ours.append((ids, [t if m else -100 for t, m in zip(ids, mask)]))
    assert sorted(ours) == sorted(theirs)


def test_qwen3_drops_earlier_reasoning_and_the_mask_still_finds_every_answer(tokenizer_of):
    """Qwen3's own template renders an earlier turn's <think> block away once a later user turn follows:
    not prefix-preserving. Span matching on its own template (as for an edited Qwen3 fine-tune)."""
    tokenizer = tokenizer_of("qwen3")
    template = ChatTemplate(tokenizer)
    template._by_markers = False
    chat = [{"role": "user", "content": Q1}, {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n" + A1},
            {"role": "user", "content": Q2}, {"role": "assistant", "content": "<think>\nrecall it\n</think>\n\n" + A2}]  # fmt: skip
    ids, mask = template.tokenize(chat)
    runs = [squash(r) for r in trained_runs(tokenizer, ids, mask)]
    assert "addthem" not in squash(tokenizer.decode(ids)), "the template drops the first turn's reasoning"
    assert runs == [squash(A1 + "<|im_end|>"), squash("<think>\nrecall it\n</think>\n\n" + A2 + "<|im_end|>")]


@pytest.mark.parametrize(("name", "prefix"), [("llama-3.2", ""), ("qwen3", "<think></think>")])
def test_a_conversational_prompt_completion_trains_only_the_completions_answers(tokenizer_of, name, prefix):
    tokenizer = tokenizer_of(name)
    template = ChatTemplate(tokenizer)
    ids, mask = template.tokenize(MULTI, train_from=4)  # the prompt ends with the second question
    eot = FAMILIES[name].end_of_turn
    assert [squash(r) for r in trained_runs(tokenizer, ids, mask)] == [squash(prefix + A2 + eot)]


def test_a_template_error_on_a_row_is_a_rejection_with_the_templates_own_words(tokenizer_of):
    template = ChatTemplate(tokenizer_of("gemma-2"))
    two_users = [{"role": "user", "content": Q1}, {"role": "user", "content": Q2}, {"role": "assistant", "content": A2}]
    with pytest.raises(RowRejected, match="Conversation roles must alternate"):
        template.fit(two_users)


def test_a_system_turn_with_nothing_after_it_cannot_be_folded(tokenizer_of):
    template = ChatTemplate(tokenizer_of("gemma-2"))
    with pytest.raises(RowRejected, match="no user turn after it"):
        template.fit([*SINGLE, {"role": "system", "content": SYSTEM}])


def test_span_matching_finds_the_assistant_header_and_end_of_turn_of_each_family(tokenizer_of):
    found = {}
    for name in FAMILIES:
        template = ChatTemplate(tokenizer_of(name))
        found[name] = (template.header, template.end_of_turn)
    assert found["llama-3.2"] == ("<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>")
    assert found["mistral-v0.3"] == ("", "</s>")  # Mistral's generation prompt adds nothing after [/INST]
    assert found["phi-3"] == ("<|assistant|>\n", "<|end|>")
    assert found["gemma-2"] == ("<start_of_turn>model\n", "<end_of_turn>")
    assert found["smollm2"] == ("<|im_start|>assistant\n", "<|im_end|>")


def test_the_bundled_demo_template_masks_by_its_own_generation_markers():
    from tests.conftest import TINY_MODEL

    tokenizer = AutoTokenizer.from_pretrained(TINY_MODEL)
    template = ChatTemplate(tokenizer)
    assert template.mask_source == "the template's generation markers"
    ids, mask = template.tokenize(MULTI)
    assert [squash(r) for r in trained_runs(tokenizer, ids, mask)] == [squash(A1 + "<|im_end|>"), squash(A2 + "<|im_end|>")]
