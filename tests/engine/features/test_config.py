"""FeaturesConfig validation and warmup item selection."""

from __future__ import annotations

import pytest

from grait_engine.features.config import FeaturesConfig, FeaturesConfigError
from grait_engine.features.warmup import select_warmup_items
from grait_engine.records.item import Item

ITEMS = [Item(id=f"i{k}", question="q?", answers=("a",)) for k in range(10)]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("dim", 0),
        ("lora_r", 1.5),
        ("lr", 0.0),
        ("lora_dropout", 1.0),
        ("adam_betas", (1.0, 0.9)),
        ("projection_dtype", "float16"),
    ],
)
def test_bad_values_name_the_field(field: str, value: object) -> None:
    with pytest.raises(FeaturesConfigError) as info:
        FeaturesConfig(**{field: value})
    assert info.value.field == field


def test_to_dict_is_canonical() -> None:
    a = FeaturesConfig(adam_betas=[0.9, 0.999], target_modules=["q_proj"])  # type: ignore[arg-type]
    b = FeaturesConfig(adam_betas=(0.9, 0.999), target_modules=("q_proj",))
    assert a == b and a.to_dict() == b.to_dict()


def test_warmup_takes_sure_items_seeded_and_capped() -> None:
    correctness = {item.id: (1.0 if k % 2 else 0.5) for k, item in enumerate(ITEMS)}
    config = FeaturesConfig(warmup_max_items=3)
    chosen, fallback = select_warmup_items(ITEMS, correctness, config, seed=0)
    assert not fallback and len(chosen) == 3
    assert all(correctness[item.id] >= 0.99 for item in chosen)
    assert chosen == select_warmup_items(ITEMS, correctness, config, seed=0)[0]
    ids = [item.id for item in chosen]
    assert ids == sorted(ids, key=lambda i: int(i[1:]))  # pool order


def test_warmup_falls_back_to_the_most_correct() -> None:
    correctness = {item.id: k / 20 for k, item in enumerate(ITEMS)}
    chosen, fallback = select_warmup_items(
        ITEMS, correctness, FeaturesConfig(warmup_fallback_items=2), seed=0
    )
    assert fallback and [item.id for item in chosen] == ["i8", "i9"]
