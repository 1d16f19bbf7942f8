"""Importers: the public QA benchmark formats of ``../shared/datasets/`` as ``Item``s.

- MMLU CSV (``choice``): columns ``id,lang,question,A,B,C,D,target``; the subject comes from
  the file name ``<subject>_<split>.csv``. A split directory imports its ``*.csv`` files in
  name order.
- ARC JSONL (``choice``): ``{"id", "question": {"stem", "choices": [{"text", "label"}]},
  "answerKey"}``. Digit labels ``1, 2, ...`` become ``A, B, ...`` (the originals are kept in
  ``meta["labels"]``); the source id is kept.
- NQ JSON (``open``): a list of ``{"qid", "question", "answer", "answers"}``. The aliases are
  ``answer`` followed by ``answers``, duplicates and blank strings dropped, order kept (in the
  shared dev file ``answer`` is always ``answers[0]``). ``id`` is accepted in place of ``qid``.

Ids are the source ids; should one repeat within an import, the repeat becomes
``<prefix>/<id>`` (prefix: MMLU subject, else the file name without suffix), then gets
``#2``, ``#3``, ... if still taken. Every importer checks its output with the dataset validator
and raises ``DatasetError`` rather than return an item the validator would reject.

Torch-free: the service imports this module.
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import Any

from grait_engine.records.fields import LETTERS
from grait_engine.records.item import Item, Task
from grait_engine.records.jsonl import check_items
from grait_engine.records.validate import DatasetError, Problem

FORMAT_TASKS: dict[str, Task] = {"mmlu": "choice", "arc": "choice", "nq": "open"}
FORMATS = tuple(FORMAT_TASKS)
MMLU_COLUMNS = ("id", "lang", "question", "A", "B", "C", "D", "target")
_MMLU_NAME = re.compile(r"^(?P<subject>.+)_(?P<split>[a-z]+)$")

PathLike = str | os.PathLike[str]


class _Ids:
    """Hands out unique ids: the source id, else ``prefix/id``, else with ``#2``, ``#3``..."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def claim(self, raw: str, prefix: str) -> str:
        candidate = raw if raw not in self._seen else f"{prefix}/{raw}"
        base, number = candidate, 2
        while candidate in self._seen:
            candidate, number = f"{base}#{number}", number + 1
        self._seen.add(candidate)
        return candidate


def _checked(items: list[Item], task: Task, source: PathLike) -> list[Item]:
    summary = check_items(items, task)
    if not summary.ok:
        raise DatasetError(
            f"{os.fspath(source)}: imported items fail validation (line = item number)",
            summary.problems,
            summary.n_problems,
        )
    return items


def mmlu_subject(path: PathLike) -> tuple[str, str | None]:
    """(subject, split) from an MMLU file name: ``anatomy_test.csv`` -> ("anatomy", "test")."""
    stem = Path(path).stem
    match = _MMLU_NAME.match(stem)
    return (match["subject"], match["split"]) if match else (stem, None)


def _read_mmlu(path: PathLike, ids: _Ids) -> list[Item]:
    subject, split = mmlu_subject(path)
    items: list[Item] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in MMLU_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DatasetError(f"{os.fspath(path)}: missing MMLU columns {', '.join(missing)}")
        for index, row in enumerate(reader):
            target = (row["target"] or "").strip()
            if target not in ("A", "B", "C", "D"):
                problem = Problem(reader.line_num, "target", f"target {target!r} is not A-D")
                raise DatasetError(f"{os.fspath(path)}: bad MMLU row", [problem])
            raw_id = row["id"] or f"{subject}/{split or 'all'}/{index}"
            item = Item(
                id=ids.claim(raw_id, subject),
                question=row["question"],
                choices={letter: row[letter] for letter in "ABCD"},
                answer=target,
                subject=subject,
                meta={"source": "mmlu", "lang": row["lang"]},
            )
            items.append(item)
    return items


def import_mmlu_file(path: PathLike) -> list[Item]:
    """One MMLU CSV file as choice items."""
    return _checked(_read_mmlu(path, _Ids()), "choice", path)


def import_mmlu_dir(directory: PathLike) -> list[Item]:
    """Every ``*.csv`` of an MMLU split directory, files in name order."""
    files = sorted(Path(directory).glob("*.csv"))
    if not files:
        raise DatasetError(f"{os.fspath(directory)}: no MMLU *.csv files")
    ids = _Ids()
    items = [item for path in files for item in _read_mmlu(path, ids)]
    return _checked(items, "choice", directory)


def _arc_item(row: dict[str, Any], ids: _Ids, prefix: str) -> Item:
    question = row["question"]
    labels = [str(option["label"]) for option in question["choices"]]
    letters = list(LETTERS[: len(labels)])
    digits = [str(number) for number in range(1, len(labels) + 1)]
    if labels not in (letters, digits):
        raise ValueError(f"unexpected choice labels {labels}")
    to_letter = dict(zip(labels, letters, strict=True))
    meta: dict[str, Any] = {"source": "arc"}
    if labels == digits:
        meta["labels"] = labels
    return Item(
        id=ids.claim(str(row["id"]), prefix),
        question=question["stem"],
        choices={
            to_letter[label]: o["text"]
            for label, o in zip(labels, question["choices"], strict=True)
        },
        answer=to_letter[str(row["answerKey"])],
        meta=meta,
    )


def import_arc(path: PathLike) -> list[Item]:
    """One ARC JSONL file as choice items."""
    ids, prefix = _Ids(), Path(path).stem
    items: list[Item] = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                items.append(_arc_item(json.loads(line), ids, prefix))
            except (ValueError, KeyError, TypeError) as exc:
                problem = Problem(number, None, f"cannot convert ARC row: {exc!r}")
                raise DatasetError(f"{os.fspath(path)}: bad ARC row", [problem]) from exc
    return _checked(items, "choice", path)


def _aliases(row: dict[str, Any]) -> list[str]:
    """``answer`` then ``answers``, without blanks or repeats, first occurrence kept."""
    candidates = ([row["answer"]] if "answer" in row else []) + list(row.get("answers") or [])
    aliases: list[str] = []
    for alias in candidates:
        if not isinstance(alias, str):
            raise TypeError(f"an answer is not a string: {alias!r}")
        if alias.strip() and alias not in aliases:
            aliases.append(alias)
    if not aliases:
        raise ValueError("no answer")
    return aliases


def _nq_item(row: dict[str, Any], ids: _Ids, prefix: str) -> Item:
    raw_id = row["qid"] if "qid" in row else row["id"]
    meta: dict[str, Any] = {"source": "nq"}
    if "lang" in row:
        meta["lang"] = row["lang"]
    return Item(
        id=ids.claim(str(raw_id), prefix),
        question=row["question"],
        answers=tuple(_aliases(row)),
        meta=meta,
    )


def import_nq(path: PathLike) -> list[Item]:
    """An NQ-style JSON file (a list of questions with answer aliases) as open items."""
    with open(path, encoding="utf-8") as handle:
        rows = json.load(handle)
    if not isinstance(rows, list):
        raise DatasetError(f"{os.fspath(path)}: expected a JSON list of questions")
    ids, prefix = _Ids(), Path(path).stem
    items: list[Item] = []
    for number, row in enumerate(rows, 1):
        try:
            items.append(_nq_item(row, ids, prefix))
        except (ValueError, KeyError, TypeError) as exc:
            problem = Problem(number, None, f"cannot convert entry {number}: {exc!r}")
            raise DatasetError(f"{os.fspath(path)}: bad NQ entry", [problem]) from exc
    return _checked(items, "open", path)


def detect_format(path: PathLike) -> str:
    """Guess the format from the path: a directory or ``.csv`` is MMLU, ``.jsonl`` ARC,
    ``.json`` NQ."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".csv":
        return "mmlu"
    if p.suffix == ".jsonl":
        return "arc"
    if p.suffix == ".json":
        return "nq"
    raise ValueError(f"cannot tell the format of {os.fspath(path)}; give one of {FORMATS}")


def import_dataset(path: PathLike, fmt: str | None = None) -> list[Item]:
    """Import ``path`` in format ``fmt`` (``mmlu``, ``arc``, ``nq``; None: detect it).

    The task type of the result is ``FORMAT_TASKS[fmt]``.
    """
    fmt = fmt or detect_format(path)
    if fmt == "mmlu":
        return import_mmlu_dir(path) if Path(path).is_dir() else import_mmlu_file(path)
    if fmt == "arc":
        return import_arc(path)
    if fmt == "nq":
        return import_nq(path)
    raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
