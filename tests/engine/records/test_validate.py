"""The streaming validator: every kind of bad line, all problems, caps, chunking."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from grait_engine.records.item import Item
from grait_engine.records.validate import (
    StreamingValidator,
    Summary,
    validate_file,
    validate_stream,
)

OPEN_OK = b'{"id": "g%d", "question": "Who?", "answers": ["Ada"]}'
CHOICE_OK = b'{"id": "g%d", "question": "Which?", "choices": {"A": "x", "B": "y"}, "answer": "A"}'


def run(data: bytes, task: str = "open", **options) -> tuple[list[Item], Summary]:
    validator = StreamingValidator(task, **options)
    items = validator.feed(data)
    items += validator.finish()
    return items, validator.summary


def sandwich(bad: bytes, task: str) -> bytes:
    """A good line 1, the bad line 2, a good line 3."""
    good = OPEN_OK if task == "open" else CHOICE_OK
    return b"\n".join([good % 1, bad, good % 3]) + b"\n"


def choice_line(**overrides) -> bytes:
    obj = {"id": "b", "question": "Which?", "choices": {"A": "x", "B": "y"}, "answer": "A"}
    obj.update(overrides)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def open_line(**overrides) -> bytes:
    obj = {"id": "b", "question": "Who?", "answers": ["Ada"]}
    obj.update(overrides)
    return json.dumps({k: v for k, v in obj.items() if v is not ...}).encode()


def raw(tail: bytes) -> bytes:
    """A valid open line with ``tail`` inserted before its closing brace."""
    return b'{"id": "b", "question": "Q", "answers": ["x"]' + tail + b"}"


ELEVEN = {chr(ord("A") + i): f"option {i}" for i in range(11)}

# (name, task, bad line 2, expected field, fragment of the message); `...` removes a key.
BAD_LINES = [
    ("utf8", "open", raw(b', "subject": "caf\xe9"'), None, "invalid UTF-8 (byte 63 of the line)"),
    ("json", "open", b'{"id": "b", "question": ', None, "invalid JSON"),
    ("trailing-comma", "open", raw(b","), None, "invalid JSON: Expecting property name"),
    ("not-object", "open", b'["b", "Who?"]', None, "must be a JSON object, got array"),
    ("nan", "open", raw(b', "meta": {"s": NaN}'), None, "NaN is not allowed"),
    ("infinity", "open", raw(b', "meta": {"s": -Infinity}'), None, "-Infinity is not allowed"),
    ("overflow", "open", raw(b', "meta": {"s": 1e999}'), None, "number 1e999 is out of range"),
    ("dup-key", "open", raw(b', "answers": ["y"]'), None, "duplicate key 'answers'"),
    ("lone-surrogate", "open", raw(b', "subject": "x\\ud800y"'), None, "lone surrogate"),
    ("lone-low-surrogate-key", "open", raw(b', "meta": {"\\udc00": 1}'), None, "lone surrogate"),
    ("too-long", "open", open_line(question="a" * 70_000), None, "longer than the limit of 65536"),
    ("id-missing", "open", open_line(id=...), "id", "missing 'id'"),
    ("id-list", "open", open_line(id=["b"]), "id", "got array"),
    ("id-float", "open", open_line(id=1.5), "id", "got number"),
    ("id-bool", "open", open_line(id=True), "id", "got boolean"),
    ("id-empty", "open", open_line(id="  "), "id", "must not be empty"),
    ("id-duplicate", "open", open_line(id="g1"), "id", "duplicate id 'g1' (first seen on line 1)"),
    ("question-missing", "open", open_line(question=...), "question", "missing 'question'"),
    ("question-number", "open", open_line(question=42), "question", "must be a string, got number"),
    ("question-null", "open", open_line(question=None), "question", "got null"),
    ("question-blank", "open", open_line(question=" \t"), "question", "must not be empty"),
    ("answers-missing", "open", open_line(answers=...), "answers", "missing 'answers'"),
    ("answers-string", "open", open_line(answers="Ada"), "answers", "must be a list of strings"),
    ("answers-empty", "open", open_line(answers=[]), "answers", "must not be empty"),
    ("alias-number", "open", open_line(answers=["Ada", 3]), "answers[1]", "got number"),
    ("alias-empty", "open", open_line(answers=[""]), "answers[0]", "must not be empty"),
    ("answer-and-answers", "open", open_line(answer="Ada"), "answer", "not both"),
    (
        "answer-alone-empty",
        "open",
        open_line(answers=..., answer=""),
        "answer",
        "must not be empty",
    ),
    (
        "open-with-choices",
        "open",
        open_line(answers=..., choices={"A": "x", "B": "y"}, answer="A"),
        "choices",
        "task type mismatch",
    ),
    ("choice-with-answers", "choice", open_line(), "answers", "task type mismatch"),
    ("unknown-key", "open", open_line(source="web"), "source", "unknown key 'source'"),
    ("subject-number", "open", open_line(subject=7), "subject", "got number"),
    ("meta-list", "open", open_line(meta=[1]), "meta", "'meta' must be an object, got array"),
    ("choices-missing", "choice", choice_line(choices=...), "choices", "missing 'choices'"),
    (
        "choices-list",
        "choice",
        choice_line(choices=["x", "y"]),
        "choices",
        "must be an object, got array",
    ),
    ("choices-one", "choice", choice_line(choices={"A": "x"}), "choices", "2 to 10 options, got 1"),
    ("choices-eleven", "choice", choice_line(choices=ELEVEN), "choices", "2 to 10 options, got 11"),
    (
        "choices-lowercase",
        "choice",
        choice_line(choices={"a": "x", "b": "y"}),
        "choices",
        "consecutive capital letters",
    ),
    (
        "choices-gap",
        "choice",
        choice_line(choices={"A": "x", "B": "y", "D": "z"}),
        "choices",
        "expected A, B, C; got A, B, D",
    ),
    (
        "option-empty",
        "choice",
        choice_line(choices={"A": "x", "B": " "}),
        "choices.B",
        "must not be empty",
    ),
    ("option-number", "choice", choice_line(choices={"A": "x", "B": 2}), "choices.B", "got number"),
    ("answer-missing", "choice", choice_line(answer=...), "answer", "missing 'answer'"),
    (
        "answer-not-key",
        "choice",
        choice_line(answer="C"),
        "answer",
        "'C' is not one of the choice keys (A, B)",
    ),
    ("answer-number", "choice", choice_line(answer=0), "answer", "got number"),
]


@pytest.mark.parametrize(
    ("task", "bad", "field", "fragment"),
    [case[1:] for case in BAD_LINES],
    ids=[case[0] for case in BAD_LINES],
)
def test_each_bad_line_is_one_problem_with_line_and_field(task, bad, field, fragment):
    items, summary = run(sandwich(bad, task), task)
    assert [(p.line, p.field) for p in summary.problems] == [(2, field)]
    assert fragment in summary.problems[0].message
    assert [item.id for item in items] == ["g1", "g3"]
    assert (summary.n_lines, summary.n_items, summary.n_bad_lines) == (3, 2, 1)
    assert not summary.ok


def test_every_bad_line_and_every_problem_of_a_line_is_reported():
    lines = [
        OPEN_OK % 1,
        b"not json",
        OPEN_OK % 3,
        open_line(id="b4", question="", subject=1, meta="m"),
        open_line(id="g1"),
        b"",
        b"42",
    ]
    items, summary = run(b"\n".join(lines), "open")
    assert [(p.line, p.field) for p in summary.problems] == [
        (2, None),
        (4, "question"),
        (4, "subject"),
        (4, "meta"),
        (5, "id"),
        (7, None),
    ]
    assert (summary.n_items, summary.n_bad_lines, summary.n_problems, summary.n_blank) == (
        2,
        4,
        6,
        1,
    )
    assert [item.id for item in items] == ["g1", "g3"]


def test_problems_past_max_problems_are_counted_not_kept():
    data = b"\n".join([b"[]"] * 25 + [OPEN_OK % 99])
    items, summary = run(data, "open", max_problems=5)
    assert [p.line for p in summary.problems] == [1, 2, 3, 4, 5]
    assert summary.n_problems == 25 and summary.n_bad_lines == 25 and summary.truncated
    assert [item.id for item in items] == ["g99"]


MIXED = (
    "\n".join(
        [
            '{"id": "é1", "question": "Où est née Ada ? 🌍", "answers": ["Londres", "ロンドン"]}',
            '{"id": "e2", "question": "Q", "answers": []}',
            "",
            '{"id": "é1", "question": "dup", "answers": ["x"], "subject": "geo"}',
            '{"id": "e4", "question": "' + "ü" * 40 + '", "answers": ["x"], "subject": "geo"}',
            '{"id": 5, "question": "int id", "answer": "five"}',
        ]
    ).encode()
    + b"\n"
    + b'{"id": "e6", "question": "last", "answers": ["no newline"]}'
)


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 4096])
def test_chunked_feeding_matches_whole_file(size):
    whole_items, whole = run(MIXED, "open", max_line_bytes=100)
    validator = StreamingValidator("open", max_line_bytes=100)
    items: list[Item] = []
    for start in range(0, len(MIXED), size):
        items += validator.feed(MIXED[start : start + size])
    items += validator.finish()
    assert items == whole_items
    assert validator.summary.to_json() == whole.to_json()
    assert [p.line for p in whole.problems] == [2, 4, 5]
    assert [item.id for item in items] == ["é1", "5", "e6"]


def test_over_long_line_is_skipped_and_the_next_line_still_checked():
    data = OPEN_OK % 1 + b"\n" + b"x" * 500 + b"\n" + OPEN_OK % 3
    validator = StreamingValidator("open", max_line_bytes=100)
    items = []
    for byte in range(len(data)):
        items += validator.feed(data[byte : byte + 1])
        assert len(validator._buffer) <= 100  # the long line is never held whole
    items += validator.finish()
    problems = validator.summary.problems
    assert [(p.line, p.field) for p in problems] == [(2, None)]
    assert "500 bytes" in problems[0].message
    assert [item.id for item in items] == ["g1", "g3"]


def test_accepted_forms_blank_lines_bom_crlf_int_ids_answer_alone():
    data = (
        b"\xef\xbb\xbf\r\n"
        + open_line(id=7, answers=..., answer="Ada")
        + b"\r\n   \n"
        + OPEN_OK % 2
    )
    items, summary = run(data, "open")
    assert summary.ok and summary.n_blank == 2 and summary.n_lines == 4
    assert items == [Item(id="7", question="Who?", answers=("Ada",)), Item("g2", "Who?", ("Ada",))]


def test_choices_in_any_order_are_stored_sorted_and_int_id_duplicates_string_id():
    data = choice_line(id="7", choices={"B": "y", "A": "x"}) + b"\n" + choice_line(id=7)
    items, summary = run(data, "choice")
    assert list(items[0].choices) == ["A", "B"]
    assert [(p.line, p.field) for p in summary.problems] == [(2, "id")]


@pytest.mark.parametrize("data", [b"", b"\n\n  \n"])
def test_a_file_without_items_is_a_problem_of_the_whole_file(data):
    _, summary = run(data, "open")
    assert [(p.line, p.field) for p in summary.problems] == [(0, None)]
    assert str(summary.problems[0]).startswith("file: ")


def test_summary_counts_hash_and_subjects(tmp_path):
    data = b"\n".join([choice_line(id=str(i), subject="geo" if i % 3 else "art") for i in range(6)])
    path = tmp_path / "d.jsonl"
    path.write_bytes(data)
    summary = validate_file(path, "choice")
    assert summary.ok and summary.n_items == 6 and summary.n_bytes == len(data)
    assert summary.sha256 == hashlib.sha256(data).hexdigest()
    assert summary.subjects == {"art": 2, "geo": 4}
    assert validate_stream(io.BytesIO(data), "choice").to_json() == summary.to_json()
    assert validate_stream(iter(data.splitlines(keepends=True)), "choice").sha256 == summary.sha256


def test_misuse_is_refused():
    with pytest.raises(ValueError, match="unknown task"):
        StreamingValidator("essay")
    validator = StreamingValidator("open")
    validator.finish()
    with pytest.raises(RuntimeError):
        validator.feed(b"{}")


def test_a_paired_surrogate_escape_is_one_character():
    """``\\ud83d\\ude00`` is valid JSON for one emoji: only lone surrogates are refused."""
    line = raw(b', "subject": "\\ud83d\\ude00"')
    items, summary = run(sandwich(line, "open"), "open")
    assert summary.ok and [item.id for item in items] == ["g1", "b", "g3"]
