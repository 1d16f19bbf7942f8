"""Field checks for one decoded dataset line (API.md, "Dataset lines").

``check_id`` and ``check_fields`` look at one JSON object and return the problems they find
as ``(field, message)`` pairs, every one of them, not only the first. The streaming validator
(``grait_engine.records.validate``) adds line numbers, duplicate-id detection and the
line-level checks (UTF-8, JSON, length).

Rules decided here (documented in the README):
- ``id`` is required: a non-empty string, or an integer (not a boolean), which is converted
  to its decimal string (so ``7`` and ``"7"`` are the same id).
- Only the documented top-level keys are allowed; put extra data under ``meta``.
- ``subject`` and ``meta`` are optional; ``null`` counts as absent.
- ``open`` items take ``answers`` (non-empty list of non-empty strings) or ``answer`` alone
  (one non-empty string, read as a one-item list), not both.
- ``choice`` items take ``choices`` (2-10 options keyed A, B, C, ... consecutively from A, in
  any order; stored sorted) and ``answer`` (one of the keys).
- A field that belongs to the other task type (``choices`` in an ``open`` dataset,
  ``answers`` in a ``choice`` dataset) is one "task type mismatch" problem; the rest of the
  item's fields are then not checked.

Torch-free: the service imports this module (through ``validate``).
"""

from __future__ import annotations

from typing import Any

from grait_engine.records.item import Task

ALLOWED_KEYS = ("id", "question", "answers", "answer", "choices", "subject", "meta")
MIN_CHOICES = 2
MAX_CHOICES = 10
LETTERS = "ABCDEFGHIJ"

FieldProblem = tuple[str | None, str]


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _blank(text: str) -> bool:
    return not text.strip()


def check_id(obj: dict[str, Any]) -> tuple[str | None, list[FieldProblem]]:
    """The item id as a string, or None with the problem."""
    if "id" not in obj:
        return None, [("id", "missing 'id'")]
    value = obj["id"]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value), []
    if not isinstance(value, str):
        return None, [("id", f"'id' must be a string or an integer, got {json_type(value)}")]
    if _blank(value):
        return None, [("id", "'id' must not be empty or whitespace-only")]
    return value, []


def check_fields(obj: dict[str, Any], task: Task) -> tuple[dict[str, Any], list[FieldProblem]]:
    """Everything but the id: the keyword arguments of ``Item`` and the problems found."""
    problems: list[FieldProblem] = [
        (key, f"unknown key {key!r} (allowed: {', '.join(ALLOWED_KEYS)}; put extra data in 'meta')")
        for key in obj
        if key not in ALLOWED_KEYS
    ]
    mismatch = _task_mismatch(obj, task)
    if mismatch is not None:
        return {}, [*problems, mismatch]
    fields: dict[str, Any] = {
        "question": _check_text(obj, "question", problems, required=True),
        "subject": _check_text(obj, "subject", problems, required=False),
        "meta": _check_meta(obj, problems),
    }
    if task == "open":
        fields["answers"] = _check_answers(obj, problems)
    else:
        fields["choices"] = _check_choices(obj, problems)
        fields["answer"] = _check_choice_answer(obj, fields["choices"], problems)
    return fields, problems


def _task_mismatch(obj: dict[str, Any], task: Task) -> FieldProblem | None:
    if task == "open" and "choices" in obj:
        key, other = "choices", "choice"
    elif task == "choice" and "answers" in obj:
        key, other = "answers", "open"
    else:
        return None
    return (
        key,
        f"task type mismatch: {key!r} belongs to {other} items, but the dataset task is {task!r}",
    )


def _check_text(
    obj: dict[str, Any], key: str, problems: list[FieldProblem], *, required: bool
) -> str | None:
    value = obj.get(key)
    if key not in obj or (value is None and not required):
        if required:
            problems.append((key, f"missing {key!r}"))
        return None
    if not isinstance(value, str):
        problems.append((key, f"{key!r} must be a string, got {json_type(value)}"))
        return None
    if _blank(value):
        problems.append((key, f"{key!r} must not be empty or whitespace-only"))
        return None
    return value


def _check_meta(obj: dict[str, Any], problems: list[FieldProblem]) -> dict[str, Any] | None:
    value = obj.get("meta")
    if value is not None and not isinstance(value, dict):
        problems.append(("meta", f"'meta' must be an object, got {json_type(value)}"))
        return None
    return value


def _check_answers(obj: dict[str, Any], problems: list[FieldProblem]) -> tuple[str, ...]:
    if "answers" in obj and "answer" in obj:
        problems.append(("answer", "give either 'answers' or 'answer', not both"))
        return ()
    if "answer" in obj:
        single = _check_text(obj, "answer", problems, required=True)
        return (single,) if single is not None else ()
    value = obj.get("answers")
    if "answers" not in obj:
        problems.append(("answers", "missing 'answers' (a non-empty list of strings)"))
        return ()
    if not isinstance(value, list):
        problems.append(("answers", f"'answers' must be a list of strings, got {json_type(value)}"))
        return ()
    if not value:
        problems.append(("answers", "'answers' must not be empty"))
        return ()
    for index, alias in enumerate(value):
        field = f"answers[{index}]"
        if not isinstance(alias, str):
            problems.append((field, f"an answer must be a string, got {json_type(alias)}"))
        elif _blank(alias):
            problems.append((field, "an answer must not be empty or whitespace-only"))
    return tuple(value)


def _check_choices(obj: dict[str, Any], problems: list[FieldProblem]) -> dict[str, str] | None:
    """The options sorted by letter, or None when the keys are unusable."""
    value = obj.get("choices")
    if "choices" not in obj:
        problems.append(("choices", "missing 'choices' (an object mapping A, B, ... to texts)"))
        return None
    if not isinstance(value, dict):
        problems.append(("choices", f"'choices' must be an object, got {json_type(value)}"))
        return None
    for key, text in value.items():
        if not isinstance(text, str):
            problems.append(
                (f"choices.{key}", f"an option must be a string, got {json_type(text)}")
            )
        elif _blank(text):
            problems.append((f"choices.{key}", "an option must not be empty or whitespace-only"))
    if not MIN_CHOICES <= len(value) <= MAX_CHOICES:
        problems.append(
            (
                "choices",
                f"'choices' must have {MIN_CHOICES} to {MAX_CHOICES} options, got {len(value)}",
            )
        )
        return None
    expected = list(LETTERS[: len(value)])
    if sorted(value) != expected:
        problems.append(
            (
                "choices",
                f"'choices' keys must be consecutive capital letters from A "
                f"(expected {', '.join(expected)}; got {', '.join(map(str, value))})",
            )
        )
        return None
    return {key: value[key] for key in expected}


def _check_choice_answer(
    obj: dict[str, Any], choices: dict[str, str] | None, problems: list[FieldProblem]
) -> str | None:
    value = obj.get("answer")
    if "answer" not in obj:
        problems.append(("answer", "missing 'answer' (one of the choice keys)"))
        return None
    if not isinstance(value, str):
        problems.append(("answer", f"'answer' must be a string, got {json_type(value)}"))
        return None
    if choices is not None and value not in choices:
        keys = ", ".join(choices)
        problems.append(("answer", f"'answer' {value!r} is not one of the choice keys ({keys})"))
        return None
    return value
