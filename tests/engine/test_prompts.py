"""Prompt texts for both task types and styles, the chat-template path, and few-shot picking."""

from __future__ import annotations

import pytest

from grait_engine.prompts import (
    REFUSAL,
    build_prompt,
    build_prompt_text,
    instruction,
    pick_shots,
    question_block,
    target_text,
)
from grait_engine.records.item import Item
from tests.engine.helpers import build_tiny_tokenizer

CHOICE_BASIC = "The following are multiple choice questions (with answers)"
OPEN_BASIC = "Answer the following questions with a short answer."
REFUSE = " If you do not know the answer, reply with I don't know."

CAPITAL = Item(
    id="geo-1",
    question="What is the capital of France?",
    choices={"A": "Paris", "B": "Rome", "C": "Madrid", "D": "Berlin"},
    answer="A",
    subject="high_school_geography",
)
CAPITAL_BLOCK = "Question: What is the capital of France?\nA. Paris\nB. Rome\nC. Madrid\nD. Berlin"
HAMLET = Item(
    id="lit-1", question="Who wrote Hamlet?", answers=("William Shakespeare", "Shakespeare")
)
SPIDER = Item(id="bio-1", question="How many legs does a spider have?", answers=("eight", "8"))


def choice_item(id: str, subject: str | None) -> Item:
    return Item(
        id=id, question=f"Question {id}?", choices={"A": "x", "B": "y"}, answer="B", subject=subject
    )


# Instructions and blocks


def test_instruction_per_task_and_style():
    assert instruction("choice", "basic") == f"{CHOICE_BASIC}."
    assert instruction("choice", "basic", "high_school_geography") == (
        f"{CHOICE_BASIC} about high school geography."
    )
    assert instruction("choice", "refuse", "anatomy") == f"{CHOICE_BASIC} about anatomy.{REFUSE}"
    assert instruction("open", "basic") == OPEN_BASIC
    assert instruction("open", "refuse") == OPEN_BASIC + REFUSE
    assert REFUSE.endswith(REFUSAL)


def test_question_block_lists_options_in_order_for_choice_only():
    assert question_block(CAPITAL) == CAPITAL_BLOCK
    assert question_block(HAMLET) == "Question: Who wrote Hamlet?"


# Plain-text prompts


def test_choice_basic_zero_shot_with_subject():
    assert build_prompt_text(CAPITAL, "basic") == (
        f"{CHOICE_BASIC} about high school geography.\n\n{CAPITAL_BLOCK}\nAnswer:"
    )


def test_choice_without_subject_has_no_about():
    item = choice_item("q", subject=None)
    assert build_prompt_text(item, "basic") == (
        f"{CHOICE_BASIC}.\n\nQuestion: Question q?\nA. x\nB. y\nAnswer:"
    )


def test_choice_refuse():
    assert build_prompt_text(CAPITAL, "refuse") == (
        f"{CHOICE_BASIC} about high school geography.{REFUSE}\n\n{CAPITAL_BLOCK}\nAnswer:"
    )


def test_open_basic_and_refuse():
    assert build_prompt_text(HAMLET, "basic") == (
        "Answer the following questions with a short answer.\n\n"
        "Question: Who wrote Hamlet?\nAnswer:"
    )
    assert build_prompt_text(HAMLET, "refuse") == (
        "Answer the following questions with a short answer."
        " If you do not know the answer, reply with I don't know.\n\n"
        "Question: Who wrote Hamlet?\nAnswer:"
    )


def test_open_prompt_ignores_subject():
    item = Item(id="o", question="Who?", answers=("Me",), subject="history")
    assert build_prompt_text(item, "basic") == f"{OPEN_BASIC}\n\nQuestion: Who?\nAnswer:"


def test_few_shot_assembly():
    mona = Item(id="lit-2", question="Who painted the Mona Lisa?", answers=("Leonardo da Vinci",))
    text = build_prompt_text(HAMLET, "refuse", shots=[SPIDER, mona])
    assert text == (
        f"{OPEN_BASIC}{REFUSE}\n\n"
        "Question: How many legs does a spider have?\nAnswer: eight\n\n"
        "Question: Who painted the Mona Lisa?\nAnswer: Leonardo da Vinci\n\n"
        "Question: Who wrote Hamlet?\nAnswer:"
    )
    assert text.count(OPEN_BASIC) == 1
    assert text.endswith("Answer:")


def test_few_shot_choice_shots_show_their_letter():
    shot = choice_item("s", subject="high_school_geography")
    text = build_prompt_text(CAPITAL, "basic", shots=[shot])
    assert text == (
        f"{CHOICE_BASIC} about high school geography.\n\n"
        "Question: Question s?\nA. x\nB. y\nAnswer: B\n\n"
        f"{CAPITAL_BLOCK}\nAnswer:"
    )


def test_target_text_has_a_leading_space():
    assert target_text(CAPITAL) == " A"
    assert target_text(HAMLET) == " William Shakespeare"
    assert target_text(CAPITAL, refuse=True) == " I don't know."
    assert target_text(HAMLET, refuse=True) == " " + REFUSAL


# Chat template


@pytest.fixture(scope="module")
def chat_tokenizer():
    return build_tiny_tokenizer(with_chat_template=True)


def test_chat_template_wraps_the_prompt_and_opens_the_answer(chat_tokenizer):
    prompt = build_prompt(CAPITAL, "refuse", shots=[SPIDER], tokenizer=chat_tokenizer)
    user = build_prompt_text(CAPITAL, "refuse", shots=[SPIDER], with_cue=False)
    assert not user.endswith("Answer:")
    assert user.endswith(CAPITAL_BLOCK)
    assert prompt == f"<|user|>\n{user}</s>\n<|assistant|>\nAnswer:"
    assert prompt.count("<|user|>") == 1  # instruction, shots and query: one user message
    assert prompt.endswith("<|assistant|>\nAnswer:")
    # The few-shot answers stay inside the user message.
    assert "Answer: eight" in user


def test_plain_text_without_a_chat_template():
    plain = build_tiny_tokenizer(with_chat_template=False)
    assert build_prompt(HAMLET, "basic", tokenizer=plain) == build_prompt_text(HAMLET, "basic")
    assert build_prompt(HAMLET, "basic") == build_prompt_text(HAMLET, "basic")


# Few-shot picking


POOL = [
    *(choice_item(f"geo-{i}", "high_school_geography") for i in range(2, 5)),
    *(choice_item(f"ana-{i}", "anatomy") for i in range(5)),
    CAPITAL,
    HAMLET,
    SPIDER,
]


def test_pick_shots_never_includes_the_query():
    for seed in range(20):
        shots = pick_shots(CAPITAL, POOL, k=len(POOL), seed=seed)
        assert CAPITAL.id not in {s.id for s in shots}
        assert len(shots) == 8  # every other choice item, no open items


def test_pick_shots_prefers_the_query_subject():
    shots = pick_shots(CAPITAL, POOL, k=3, seed=0)
    assert {s.id for s in shots} == {"geo-2", "geo-3", "geo-4"}
    shots = pick_shots(CAPITAL, POOL, k=5, seed=0)
    assert [s.subject for s in shots] == ["high_school_geography"] * 3 + ["anatomy"] * 2


def test_pick_shots_is_deterministic_per_seed():
    first = pick_shots(CAPITAL, POOL, k=4, seed=3)
    assert pick_shots(CAPITAL, POOL, k=4, seed=3) == first
    orders = {tuple(s.id for s in pick_shots(CAPITAL, POOL, k=4, seed=seed)) for seed in range(10)}
    assert len(orders) > 1


def test_pick_shots_without_subject_uses_same_task_items():
    shots = pick_shots(HAMLET, POOL, k=5, seed=1)
    assert [s.id for s in shots] == ["bio-1"]


def test_pick_shots_zero_k_gives_nothing():
    assert pick_shots(CAPITAL, POOL, k=0, seed=0) == []
    assert pick_shots(CAPITAL, POOL, k=-1, seed=0) == []


def test_token_ids_add_bos_only_without_chat_template(tiny_model_dir):
    """A chat template writes BOS itself; adding special tokens too would double it."""
    from transformers import AutoTokenizer

    from grait_engine.prompts import token_ids

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    plain = token_ids(tokenizer, ["Question: x"])[0]
    assert plain[0] == tokenizer.bos_token_id
    tokenizer.chat_template = "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}"
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Question: x"}], tokenize=False, add_generation_prompt=True
    )
    chat = token_ids(tokenizer, [text])[0]
    assert chat.count(tokenizer.bos_token_id) == 1
