"""Dataset problems: ``Problem`` (one finding), ``Summary`` (one file) and ``DatasetError``.

Shared by the validator, the JSONL reader/writer and the importers.

Torch-free: the service imports this module (through ``validate``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from grait_engine.records.item import Task


@dataclass(frozen=True)
class Problem:
    """One problem: 1-based line (0: the whole file), field (None: the whole line), message."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return (
            f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Summary:
    """The outcome of validating one file; ``problems`` holds at most ``max_problems``."""

    task: Task
    n_bytes: int = 0
    sha256: str = ""
    n_lines: int = 0
    n_blank: int = 0
    n_items: int = 0
    n_bad_lines: int = 0
    n_problems: int = 0
    problems: list[Problem] = field(default_factory=list)
    subjects: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.n_problems == 0

    @property
    def truncated(self) -> bool:
        """True when more problems were counted than kept."""
        return self.n_problems > len(self.problems)

    def to_json(self) -> dict[str, Any]:
        obj = asdict(self)
        obj["problems"] = [p.to_json() for p in self.problems]
        obj["ok"], obj["truncated"] = self.ok, self.truncated
        return obj


class DatasetError(ValueError):
    """A dataset that failed validation; ``problems`` lists what was kept of its problems."""

    def __init__(self, message: str, problems: Iterable[Problem] = (), n_problems: int = 0):
        self.problems = list(problems)
        self.n_problems = max(n_problems, len(self.problems))
        lines = [message, *(f"  {p}" for p in self.problems[:5])]
        if self.n_problems > 5:
            lines.append(f"  ... {self.n_problems - 5} more")
        super().__init__("\n".join(lines))

    @classmethod
    def from_summary(cls, summary: Summary, source: str) -> DatasetError:
        return cls(
            f"{source}: {summary.n_problems} problem(s) in {summary.n_lines} line(s)",
            summary.problems,
            summary.n_problems,
        )
