"""Streaming validation of dataset JSONL (API.md, "Dataset lines").

``StreamingValidator`` takes the bytes of a dataset file in chunks of any size (an HTTP upload
as it arrives; lines may span chunks), checks every line as soon as it is complete and hands
back the valid ``Item``s. It never holds more than one line (at most ``max_line_bytes``) plus
the set of ids seen. Every problem is counted; the first ``max_problems`` are kept, each as a
``Problem(line, field, message)`` with a 1-based line number.

Line rules (documented in the README; field rules are in ``grait_engine.records.fields``):
- Lines end with ``\\n`` (a ``\\r`` before it is allowed); the last line may lack it.
- Blank (empty or whitespace-only) lines are skipped silently; they still count as lines.
- A UTF-8 byte-order mark at the start of the file is ignored.
- A line longer than ``max_line_bytes`` (default 64 KiB, not counting ``\\n``) is rejected
  without being decoded; only its length is kept in memory.
- Each line must be valid UTF-8 and one JSON object. NaN, Infinity, numbers that overflow a
  float and duplicate keys are rejected, and so is a lone surrogate escape (``"\\ud800"``
  without its pair: valid JSON syntax, but no Unicode text; tokenizers fail on it).
- Ids are unique: a repeated id is reported on the later line, naming the first.
- A file without any item gets one problem on line 0 (line 0 means the whole file).

Torch-free: the service imports this module.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

from grait_engine.records.fields import check_fields, check_id, json_type
from grait_engine.records.item import TASKS, Item, Task
from grait_engine.records.problems import DatasetError, Problem, Summary

MAX_LINE_BYTES = 64 * 1024
MAX_PROBLEMS = 1000
CHUNK_BYTES = 1 << 16
_BOM = b"\xef\xbb\xbf"
# A UTF-16 surrogate code point: only a lone ``\uD800``-``\uDFFF`` escape decodes to one.
_SURROGATE = re.compile("[\ud800-\udfff]")

__all__ = [
    "CHUNK_BYTES",
    "MAX_LINE_BYTES",
    "MAX_PROBLEMS",
    "DatasetError",
    "Problem",
    "StreamingValidator",
    "Summary",
    "parse_line",
    "read_chunks",
    "validate_file",
    "validate_stream",
]


class _Rejected(ValueError):
    """Raised from inside ``json.loads`` hooks for input Python accepts but JSON does not."""


def _reject_constant(token: str) -> Any:
    raise _Rejected(f"{token} is not allowed (NaN and Infinity are not JSON)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Rejected(f"number {text} is out of range")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise _Rejected(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def parse_line(raw: bytes) -> tuple[Any, str | None]:
    """Decode one line: (value, None) or (None, message). Strict UTF-8 and strict JSON."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"invalid UTF-8 (byte {exc.start + 1} of the line)"
    try:
        value = json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON: {exc.msg} (column {exc.colno})"
    except RecursionError:
        return None, "invalid JSON: nested too deeply"
    except ValueError as exc:  # _Rejected, or an integer with too many digits
        return None, f"invalid JSON: {exc}"
    if _has_surrogate(value):
        return None, "invalid JSON: a lone surrogate escape (\\ud800-\\udfff) is not text"
    return value, None


def _has_surrogate(value: Any) -> bool:
    """Whether a string anywhere in a parsed JSON value (keys included) holds a lone
    surrogate (a paired escape such as ``\\ud83d\\ude00`` decodes to one character)."""
    if isinstance(value, str):
        return _SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(item) for item in value)
    return False


class StreamingValidator:
    """Validate a dataset file fed in byte chunks: ``feed`` each chunk, then ``finish``.

    ``feed`` and ``finish`` return the valid items completed by that call. ``summary`` is the
    running summary (one object, updated as input arrives); it is final after ``finish``.
    """

    def __init__(
        self,
        task: Task,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_problems: int = MAX_PROBLEMS,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r} (expected one of {', '.join(TASKS)})")
        self.task = task
        self.max_line_bytes = max_line_bytes
        self.max_problems = max_problems
        self._hash = hashlib.sha256()
        self._summary = Summary(task=task)
        self._subjects: Counter[str] = Counter()
        self._first_line: dict[str, int] = {}
        self._buffer = bytearray()
        self._line_bytes = 0
        self._finished = False

    def feed(self, chunk: bytes) -> list[Item]:
        """Take the next bytes of the file; return the items of the lines they complete."""
        if self._finished:
            raise RuntimeError("feed() after finish()")
        self._hash.update(chunk)
        self._summary.n_bytes += len(chunk)
        items: list[Item] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._take(chunk[start:end])
            self._end_line(items)
            start = end + 1
        self._take(chunk[start:])
        return items

    def finish(self) -> list[Item]:
        """End of input: check a last line without ``\\n``; return its item if valid."""
        if self._finished:
            return []
        items: list[Item] = []
        if self._line_bytes:
            self._end_line(items)
        self._finished = True
        if self._summary.n_lines == self._summary.n_blank:
            self._report(0, None, "the file has no items (it is empty or only blank lines)")
        return items

    @property
    def summary(self) -> Summary:
        self._summary.sha256 = self._hash.hexdigest()
        self._summary.subjects = dict(sorted(self._subjects.items()))
        return self._summary

    def _take(self, piece: bytes) -> None:
        # Keep the bytes of the current line only while it is within the limit.
        self._line_bytes += len(piece)
        if self._line_bytes <= self.max_line_bytes:
            self._buffer += piece
        elif self._buffer:
            self._buffer.clear()

    def _end_line(self, items: list[Item]) -> None:
        self._summary.n_lines += 1
        line = self._summary.n_lines
        before = self._summary.n_problems
        if self._line_bytes > self.max_line_bytes:
            message = (
                f"line is {self._line_bytes} bytes, longer than the limit of {self.max_line_bytes}"
            )
            self._report(line, None, message)
        else:
            item = self._check_line(line, bytes(self._buffer))
            if item is not None:
                items.append(item)
        if self._summary.n_problems > before:
            self._summary.n_bad_lines += 1
        self._buffer.clear()
        self._line_bytes = 0

    def _check_line(self, line: int, raw: bytes) -> Item | None:
        if line == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        if not raw.strip():
            self._summary.n_blank += 1
            return None
        obj, error = parse_line(raw)
        if error is not None:
            self._report(line, None, error)
            return None
        if not isinstance(obj, dict):
            self._report(line, None, f"a line must be a JSON object, got {json_type(obj)}")
            return None
        item_id, problems = check_id(obj)
        if item_id is not None:
            first = self._first_line.setdefault(item_id, line)
            if first != line:
                problems.append(("id", f"duplicate id {item_id!r} (first seen on line {first})"))
        fields, more = check_fields(obj, self.task)
        for name, message in [*problems, *more]:
            self._report(line, name, message)
        if problems or more:
            return None
        self._summary.n_items += 1
        if fields["subject"] is not None:
            self._subjects[fields["subject"]] += 1
        assert item_id is not None  # a missing or bad id is a problem, handled above
        return Item(id=item_id, **fields)

    def _report(self, line: int, name: str | None, message: str) -> None:
        self._summary.n_problems += 1
        if len(self._summary.problems) < self.max_problems:
            self._summary.problems.append(Problem(line, name, message))


def read_chunks(stream: BinaryIO | Iterable[bytes], size: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Chunks of a binary file object (read ``size`` bytes at a time) or of an iterable."""
    read = getattr(stream, "read", None)
    if read is not None:
        yield from iter(lambda: read(size), b"")
    else:
        yield from stream


def validate_stream(
    stream: BinaryIO | Iterable[bytes],
    task: Task,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_problems: int = MAX_PROBLEMS,
) -> Summary:
    """Validate a binary stream or an iterable of byte chunks/lines; the items are dropped."""
    validator = StreamingValidator(task, max_line_bytes=max_line_bytes, max_problems=max_problems)
    for chunk in read_chunks(stream):
        validator.feed(chunk)
    validator.finish()
    return validator.summary


def validate_file(
    path: str | os.PathLike[str],
    task: Task,
    *,
    max_line_bytes: int = MAX_LINE_BYTES,
    max_problems: int = MAX_PROBLEMS,
) -> Summary:
    """Validate a dataset file on disk, streaming it in chunks."""
    with open(path, "rb") as handle:
        return validate_stream(
            handle, task, max_line_bytes=max_line_bytes, max_problems=max_problems
        )
