"""Receive one dataset upload: raw JSONL body or multipart form, streamed into a sink.

Content types: ``application/x-ndjson``, ``application/jsonl`` and ``text/plain`` carry the
file as the body (``task`` query parameter); ``multipart/form-data`` carries a ``file`` part
and a ``task`` field (or the query parameter). Anything else is 415.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from app.datasets.multipart import read_multipart
from app.datasets.sink import UploadSink
from app.errors import InvalidDataset, PayloadTooLarge, UnprocessableRequest, UnsupportedMediaType
from grait_engine.records.problems import Summary

RAW_TYPES = ("application/x-ndjson", "application/jsonl", "text/plain")
MULTIPART = "multipart/form-data"
# Room for multipart boundaries, part headers and the task field on top of the file's cap.
MULTIPART_OVERHEAD = 64 * 1024
MAX_REPORTED_PROBLEMS = 20
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Received:
    """A valid upload: its validation summary and the client's file name (metadata only)."""

    summary: Summary
    filename: str | None


def clean_filename(name: str | None) -> str | None:
    """The last path component of a client file name, without control characters.

    Display only: ``../../x.jsonl`` becomes ``x.jsonl``; the stored file gets a server name.
    """
    if not name:
        return None
    base = _UNSAFE.sub("", name.replace("\\", "/").rsplit("/", 1)[-1]).strip()
    return base[:255] if base not in ("", ".", "..") else None


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def check_length(content_length: str | None, limit: int) -> None:
    """Refuse before reading when the declared length is already over ``limit``."""
    if content_length and content_length.isdigit() and int(content_length) > limit:
        raise PayloadTooLarge(f"the request body is larger than {limit} bytes", max_bytes=limit)


async def receive(
    stream: AsyncIterator[bytes],
    sink: UploadSink,
    *,
    content_type: str | None,
    content_length: str | None,
    filename: str | None,
) -> Received:
    """Stream the body into ``sink`` and validate; raise a problem for any bad upload."""
    kind = media_type(content_type)
    if kind == MULTIPART:
        limit = sink.max_bytes + MULTIPART_OVERHEAD
        check_length(content_length, limit)
        assert content_type is not None
        form = await read_multipart(stream, content_type, sink, max_body=limit)
        if not form.has_file:
            raise _missing("file", "a multipart upload needs a 'file' part")
        filename = form.filename
    elif kind in RAW_TYPES:
        check_length(content_length, sink.max_bytes)
        if sink.task is None:
            raise _missing("task", "the task query parameter is required")
        async for chunk in stream:
            sink.write(chunk)
    else:
        allowed = ", ".join((*RAW_TYPES, MULTIPART))
        raise UnsupportedMediaType(f"send the dataset as one of: {allowed}")
    if sink.task is None:
        raise _missing("task", "the task field (or query parameter) is required")
    summary = sink.finish()
    if not summary.ok:
        raise invalid_dataset(summary)
    return Received(summary=summary, filename=clean_filename(filename))


def _missing(field: str, detail: str) -> UnprocessableRequest:
    return UnprocessableRequest(detail, errors=[{"field": field, "message": "required"}])


def invalid_dataset(summary: Summary) -> InvalidDataset:
    """The 422 problem for a dataset with problems: the first 20 and the total count."""
    errors = [problem.to_json() for problem in summary.problems[:MAX_REPORTED_PROBLEMS]]
    return InvalidDataset(
        f"the dataset has {summary.n_problems} problem(s) on {summary.n_bad_lines} line(s)",
        errors=errors,
        n_problems=summary.n_problems,
    )
