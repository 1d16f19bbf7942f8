"""Read and write dataset files (JSONL, one item per line; API.md, "Dataset lines").

Reading always goes through the streaming validator: a file with any problem raises
``DatasetError`` carrying the problems, so callers never see part of a bad file. Writing uses
the canonical form, ``json.dumps(item.to_json(), ensure_ascii=False)`` plus ``\\n`` per line,
checks the bytes with the same validator (a written file always reads back) and replaces the
target atomically. A canonical file round-trips byte-identically through read and write.

Torch-free: the service imports this module.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator

from grait_engine.artifacts import atomic_write_bytes
from grait_engine.records.item import Item, Task
from grait_engine.records.validate import (
    CHUNK_BYTES,
    MAX_LINE_BYTES,
    DatasetError,
    StreamingValidator,
    Summary,
    read_chunks,
    validate_file,
)


def encode_item(item: Item) -> bytes:
    """One item as its canonical dataset line, ``\\n`` included."""
    return (json.dumps(item.to_json(), ensure_ascii=False) + "\n").encode("utf-8")


def encode_items(items: Iterable[Item]) -> bytes:
    """The canonical bytes of a dataset file holding ``items``."""
    return b"".join(encode_item(item) for item in items)


def check_items(items: Iterable[Item], task: Task) -> Summary:
    """Validate in-memory items exactly as their canonical file would be validated."""
    validator = StreamingValidator(task)
    for item in items:
        validator.feed(encode_item(item))
    validator.finish()
    return validator.summary


def read_items(
    path: str | os.PathLike[str], task: Task, *, max_line_bytes: int = MAX_LINE_BYTES
) -> list[Item]:
    """All items of a dataset file; raises ``DatasetError`` listing the problems if invalid."""
    validator = StreamingValidator(task, max_line_bytes=max_line_bytes)
    items: list[Item] = []
    with open(path, "rb") as handle:
        for chunk in read_chunks(handle, CHUNK_BYTES):
            items.extend(validator.feed(chunk))
    items.extend(validator.finish())
    summary = validator.summary
    if not summary.ok:
        raise DatasetError.from_summary(summary, os.fspath(path))
    return items


def iter_items(
    path: str | os.PathLike[str], task: Task, *, max_line_bytes: int = MAX_LINE_BYTES
) -> Iterator[Item]:
    """The items of a dataset file, one at a time, in bounded memory.

    The file is validated in a first pass, so ``DatasetError`` is raised before any item is
    yielded; the second pass yields the items.
    """
    summary = validate_file(path, task, max_line_bytes=max_line_bytes)
    if not summary.ok:
        raise DatasetError.from_summary(summary, os.fspath(path))
    validator = StreamingValidator(task, max_line_bytes=max_line_bytes)
    with open(path, "rb") as handle:
        for chunk in read_chunks(handle, CHUNK_BYTES):
            yield from validator.feed(chunk)
    yield from validator.finish()


def write_items(
    path: str | os.PathLike[str], items: Iterable[Item], task: Task | None = None
) -> Summary:
    """Write ``items`` canonically and atomically; return the summary of the bytes written.

    ``task`` defaults to the first item's task. Raises ``DatasetError`` (and writes nothing)
    if the items would not make a valid file: mixed task types, duplicate ids, no items, ...
    """
    items = list(items)
    if task is None:
        if not items:
            raise DatasetError(f"{os.fspath(path)}: no items to write")
        task = items[0].task
    summary = check_items(items, task)
    if not summary.ok:
        raise DatasetError.from_summary(summary, os.fspath(path))
    atomic_write_bytes(path, encode_items(items))
    return summary
