"""Importers: exact counts and known rows of the shared benchmark files, and edge cases."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grait_engine.records.importers import (
    FORMAT_TASKS,
    detect_format,
    import_arc,
    import_dataset,
    import_mmlu_dir,
    import_nq,
)
from grait_engine.records.item import Item
from grait_engine.records.jsonl import check_items, read_items, write_items
from grait_engine.records.problems import DatasetError

DATASETS = (Path(__file__).resolve().parents[3] / ".." / "shared" / "datasets").resolve()
needs_data = pytest.mark.skipif(
    not DATASETS.is_dir(), reason=f"shared benchmark files not found at {DATASETS}"
)

SHARED = [
    ("mmlu/test", "mmlu", 14_042),
    ("mmlu/val", "mmlu", 1_531),
    ("ARC/ARC-c/ARC-Challenge-Test.jsonl", "arc", 1_172),
    ("nq/en/dev.json", "nq", 3_610),
]
_cache: dict[str, list[Item]] = {}


def imported(relative: str) -> list[Item]:
    if relative not in _cache:
        _cache[relative] = import_dataset(DATASETS / relative)
    return _cache[relative]


def by_id(relative: str) -> dict[str, Item]:
    return {item.id: item for item in imported(relative)}


@needs_data
@pytest.mark.parametrize(("relative", "fmt", "count"), SHARED)
def test_shared_files_import_with_exact_counts_unique_ids_and_validate(relative, fmt, count):
    assert detect_format(DATASETS / relative) == fmt
    items = imported(relative)
    assert len(items) == count
    assert len({item.id for item in items}) == count
    assert {item.task for item in items} == {FORMAT_TASKS[fmt]}
    summary = check_items(items, FORMAT_TASKS[fmt])
    assert summary.ok and summary.n_items == count


@needs_data
def test_mmlu_rows():
    test = by_id("mmlu/test")
    assert imported("mmlu/test")[0].id == "abstract_algebra/test/0"  # files in name order
    assert test["anatomy/test/1"] == Item(
        id="anatomy/test/1",
        question='A "dished face" profile is often associated with',
        choices={
            "A": "a protruding mandible due to reactivation of the condylar cartilage by acromegaly.",
            "B": "a recessive maxilla due to failure of elongation of the cranial base.",
            "C": "an enlarged frontal bone due to hydrocephaly.",
            "D": "defective development of the maxillary air sinus.",
        },
        answer="B",
        subject="anatomy",
        meta={"source": "mmlu", "lang": "en"},
    )
    val = by_id("mmlu/val")["anatomy/val/0"]
    assert (val.choices["D"], val.answer, val.subject) == ("Homeostasis", "D", "anatomy")
    assert len({item.subject for item in imported("mmlu/test")}) == 57


@needs_data
def test_arc_rows_letters_and_digit_labels():
    arc = by_id("ARC/ARC-c/ARC-Challenge-Test.jsonl")
    first = arc["Mercury_7175875"]
    assert first.answer == "C" and first.choices["C"] == "Planetary days will become shorter."
    digits = arc["NYSEDREGENTS_2008_8_34"]
    assert list(digits.choices) == ["A", "B", "C", "D"]
    assert digits.answer == "B"
    assert digits.choices["B"] == "Kinetic energy increases and potential energy decreases."
    assert digits.meta == {"source": "arc", "labels": ["1", "2", "3", "4"]}
    sizes = {len(item.choices) for item in arc.values()}
    assert sizes == {3, 4, 5}


@needs_data
def test_nq_rows_and_round_trip(tmp_path):
    nq = by_id("nq/en/dev.json")
    assert nq["nq_dev_0"].question == "when was the last time anyone was on the moon"
    assert nq["nq_dev_0"].answers == ("14 December 1972 UTC", "December 1972")
    assert nq["nq_dev_3"].answers == ("2017",)
    items = imported("nq/en/dev.json")
    write_items(tmp_path / "nq.jsonl", items)
    assert read_items(tmp_path / "nq.jsonl", "open") == items


MMLU_HEADER = "id,lang,question,A,B,C,D,target\n"


def test_colliding_ids_are_prefixed_and_stay_unique(tmp_path):
    for subject in ("b_subject", "a_subject"):
        (tmp_path / f"{subject}_test.csv").write_text(
            MMLU_HEADER + "1,en,Q?,w,x,y,z,A\n1,en,Q2?,w,x,y,z,B\n,en,Q3?,w,x,y,z,C\n"
        )
    ids = [item.id for item in import_mmlu_dir(tmp_path)]
    assert ids == [
        "1",
        "a_subject/1",
        "a_subject/test/2",
        "b_subject/1",
        "b_subject/1#2",
        "b_subject/test/2",
    ]


def test_nq_aliases_combine_answer_then_answers_deduped(tmp_path):
    rows = [
        {"qid": "n1", "question": "q", "answer": "b", "answers": ["a", "b", " ", "a", "c"]},
        {"id": "n2", "question": "q", "answers": ["only"]},
    ]
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(rows))
    items = import_nq(path)
    assert [item.answers for item in items] == [("b", "a", "c"), ("only",)]
    assert [item.id for item in items] == ["n1", "n2"]


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        (
            {
                "id": "x",
                "question": {
                    "stem": "s",
                    "choices": [{"text": "t", "label": "Z"}, {"text": "u", "label": "Y"}],
                },
                "answerKey": "Z",
            },
            "labels",
        ),
        (
            {
                "id": "x",
                "question": {
                    "stem": "s",
                    "choices": [{"text": "t", "label": "A"}, {"text": "u", "label": "B"}],
                },
                "answerKey": "E",
            },
            "'E'",
        ),
        (
            {
                "id": "x",
                "question": {
                    "stem": " ",
                    "choices": [{"text": "t", "label": "A"}, {"text": "u", "label": "B"}],
                },
                "answerKey": "A",
            },
            "question",
        ),
    ],
)
def test_bad_arc_rows_raise(tmp_path, row, fragment):
    path = tmp_path / "arc.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(DatasetError, match=fragment):
        import_arc(path)


def test_bad_mmlu_target_and_unknown_format(tmp_path):
    path = tmp_path / "x_test.csv"
    path.write_text(MMLU_HEADER + "1,en,Q?,w,x,y,z,E\n")
    with pytest.raises(DatasetError) as caught:
        import_dataset(path)
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "target")]
    with pytest.raises(ValueError, match="unknown format"):
        import_dataset(path, "trivia")
    with pytest.raises(ValueError, match="cannot tell"):
        detect_format(tmp_path / "data.parquet")
