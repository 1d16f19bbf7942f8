"""The QA item: one line of a dataset file (API.md, "Dataset lines").

Two task types share one record:
- ``open``: ``answers`` holds the gold aliases (non-empty); ``choices`` and ``answer`` are None.
- ``choice``: ``choices`` maps capital letters to option texts and ``answer`` is the gold
  letter; ``answers`` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Task = Literal["open", "choice"]
TASKS: tuple[Task, ...] = ("open", "choice")


@dataclass(frozen=True)
class Item:
    """One QA item. Immutable; ``to_json`` gives the canonical dataset-line object."""

    id: str
    question: str
    answers: tuple[str, ...] = ()
    choices: dict[str, str] | None = None
    answer: str | None = None
    subject: str | None = None
    meta: dict[str, Any] | None = field(default=None, compare=True, hash=False)

    @property
    def task(self) -> Task:
        return "choice" if self.choices is not None else "open"

    @property
    def gold_text(self) -> str:
        """The gold answer as a training target: the letter for choice, first alias for open."""
        if self.task == "choice":
            assert self.answer is not None
            return self.answer
        return self.answers[0]

    def to_json(self) -> dict[str, Any]:
        """The dataset-line object, keys in the documented order, optional keys only if set."""
        obj: dict[str, Any] = {"id": self.id, "question": self.question}
        if self.task == "choice":
            obj["choices"] = dict(self.choices or {})
            obj["answer"] = self.answer
        else:
            obj["answers"] = list(self.answers)
        if self.subject is not None:
            obj["subject"] = self.subject
        if self.meta is not None:
            obj["meta"] = self.meta
        return obj
