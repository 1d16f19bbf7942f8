"""Small item pools for the probe tests: prompt lengths differ, so batches are padded."""

from __future__ import annotations

import pytest

from grait_engine.modeling import ModelSpec, load_model
from grait_engine.records.item import Item

WORDS = "river sea mountain valley capital France Rome Paris spider legs answer question".split()


def question(i: int) -> str:
    """Questions of 1 to 12 words, varying with ``i``."""
    return " ".join(WORDS[i % 5 : 1 + i % 12] or WORDS[:2]) + "?"


def choice_items(n: int, prefix: str = "c") -> list[Item]:
    return [
        Item(
            id=f"{prefix}{i}",
            question=question(i),
            choices={"A": "Paris", "B": "Rome", "C": "x" * (1 + i % 5), "D": "Berlin"},
            answer="ABCD"[i % 4],
        )
        for i in range(n)
    ]


def open_items(n: int, prefix: str = "o") -> list[Item]:
    return [
        Item(id=f"{prefix}{i}", question=question(i), answers=("Paris", "the sea"))
        for i in range(n)
    ]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    """(model, tokenizer) of the session's tiny random Llama, loaded once per module."""
    return load_model(ModelSpec(str(tiny_model_dir)))
