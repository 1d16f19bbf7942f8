"""Dataset files: canonical round trip, reading bad files, atomic validated writes."""

from __future__ import annotations

import hashlib

import pytest

from grait_engine.records.item import Item
from grait_engine.records.jsonl import iter_items, read_items, write_items
from grait_engine.records.problems import DatasetError

# Canonical lines written by hand (not by the code under test): keys in the documented order,
# ", " and ": " separators, non-ASCII text unescaped.
CANONICAL = {
    "open": (
        '{"id": "q1", "question": "Où est née Ada Lovelace ?", "answers": ["Londres", "London, UK"], '
        '"subject": "histoire", "meta": {"source": "toy", "seen": 3, "p": 0.25, "tags": ["é", null]}}\n'
        '{"id": "q2", "question": "東京はどこ？", "answers": ["日本"]}\n'
        '{"id": "q3", "question": "Emoji 🌍 \\"quoted\\" and \\\\ slash", "answers": ["🌍"], "meta": {}}\n'
    ),
    "choice": (
        '{"id": "c1", "question": "Quelle est la capitale ?", "choices": {"A": "Paris", "B": "Lyon", '
        '"C": "Nice", "D": "Lille"}, "answer": "A", "subject": "géographie"}\n'
        '{"id": "c2", "question": "Two options", "choices": {"A": "ja", "B": "nein"}, "answer": "B", '
        '"meta": {"nested": {"k": [1, 2]}}}\n'
    ),
}

EXPECTED = {
    "open": [
        Item(
            "q1",
            "Où est née Ada Lovelace ?",
            ("Londres", "London, UK"),
            subject="histoire",
            meta={"source": "toy", "seen": 3, "p": 0.25, "tags": ["é", None]},
        ),
        Item("q2", "東京はどこ？", ("日本",)),
        Item("q3", 'Emoji 🌍 "quoted" and \\ slash', ("🌍",), meta={}),
    ],
    "choice": [
        Item(
            "c1",
            "Quelle est la capitale ?",
            choices={"A": "Paris", "B": "Lyon", "C": "Nice", "D": "Lille"},
            answer="A",
            subject="géographie",
        ),
        Item(
            "c2",
            "Two options",
            choices={"A": "ja", "B": "nein"},
            answer="B",
            meta={"nested": {"k": [1, 2]}},
        ),
    ],
}


@pytest.mark.parametrize("task", ["open", "choice"])
def test_canonical_file_round_trips_byte_identically(tmp_path, task):
    source = tmp_path / "in.jsonl"
    source.write_bytes(CANONICAL[task].encode())
    items = read_items(source, task)
    assert items == EXPECTED[task]
    assert list(iter_items(source, task)) == items
    summary = write_items(tmp_path / "out.jsonl", items)
    written = (tmp_path / "out.jsonl").read_bytes()
    assert written == source.read_bytes()
    assert summary.sha256 == hashlib.sha256(written).hexdigest()
    assert read_items(tmp_path / "out.jsonl", task) == items


def test_accepted_non_canonical_input_is_written_canonically(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'{"answer": "Ada", "question": "caf\\u00e9?", "id": 7}\r\n\n'
        b'{"id":"b","question":"x","answers":["y"],"subject":null}'
    )
    items = read_items(source, "open")
    write_items(tmp_path / "out.jsonl", items)
    assert (tmp_path / "out.jsonl").read_text(encoding="utf-8") == (
        '{"id": "7", "question": "café?", "answers": ["Ada"]}\n'
        '{"id": "b", "question": "x", "answers": ["y"]}\n'
    )


def test_reading_a_bad_file_raises_with_every_problem(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(
        b'{"id": "a", "question": "Q", "answers": ["x"]}\n'
        b'{"id": "a", "question": "Q", "answers": ["x"]}\n'
        b'{"id": "c", "question": "Q", "choices": {"A": "x", "B": "y"}, "answer": "A"}\n'
    )
    with pytest.raises(DatasetError) as caught:
        read_items(path, "open")
    assert [(p.line, p.field) for p in caught.value.problems] == [(2, "id"), (3, "choices")]
    assert "line 2, id: duplicate id 'a'" in str(caught.value)
    with pytest.raises(DatasetError):
        next(iter_items(path, "open"))  # raised before the first item is yielded


@pytest.mark.parametrize(
    ("items", "fragment"),
    [
        ([Item("a", "Q", ("x",)), Item("a", "Q", ("y",))], "duplicate id"),
        (
            [Item("a", "Q", ("x",)), Item("b", "Q", choices={"A": "1", "B": "2"}, answer="A")],
            "mismatch",
        ),
        ([Item("a", "Q", ("x",), meta={"score": float("nan")})], "NaN"),
        ([Item("a", " ", ("x",))], "question"),
        ([], "no items"),
    ],
)
def test_write_refuses_items_that_would_not_read_back(tmp_path, items, fragment):
    target = tmp_path / "out.jsonl"
    with pytest.raises(DatasetError, match=fragment):
        write_items(target, items)
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_an_existing_file(tmp_path):
    target = tmp_path / "out.jsonl"
    target.write_text("old")
    write_items(target, [Item("a", "Q", ("x",))])
    assert target.read_text() == '{"id": "a", "question": "Q", "answers": ["x"]}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
