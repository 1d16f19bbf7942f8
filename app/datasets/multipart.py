"""A streaming ``multipart/form-data`` reader for dataset uploads.

Starlette's form parser spools whole files before the endpoint runs, so the size cap could
not be enforced while streaming. This reader feeds ``python_multipart`` chunk by chunk and
hands the file part's bytes straight to an ``UploadSink``; small fields (``task``) are kept,
capped at ``FIELD_LIMIT`` bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from app.datasets.sink import UploadSink, parse_task
from app.errors import BadRequest, PayloadTooLarge, UnprocessableRequest

if TYPE_CHECKING:  # python_multipart defines its callback type for type checkers only
    from python_multipart.multipart import MultipartCallbacks

FIELD_LIMIT = 1024
MAX_FIELDS = 16


@dataclass
class _Part:
    name: str = ""
    filename: str | None = None
    data: bytearray = field(default_factory=bytearray)


@dataclass
class MultipartResult:
    """The form fields (name -> text) and the file part's client file name, if any."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    has_file: bool = False


class _Events:
    """Collects parser callbacks; processed after each ``write`` (callbacks stay trivial)."""

    def __init__(self) -> None:
        self.items: list[tuple[str, bytes]] = []
        self._header_name = b""
        self._header_value = b""

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": lambda: self.items.append(("begin", b"")),
            "on_part_data": lambda data, start, end: self.items.append(("data", data[start:end])),
            "on_part_end": lambda: self.items.append(("end", b"")),
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
        }

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self.items.append(("disposition", self._header_value))
        self._header_name, self._header_value = b"", b""


async def read_multipart(
    stream: AsyncIterator[bytes],
    content_type: str,
    sink: UploadSink,
    *,
    max_body: int,
    file_field: str = "file",
) -> MultipartResult:
    """Read the body: the ``file_field`` part goes to ``sink``, other parts to ``fields``.

    Fields named ``task`` are applied to the sink as soon as they end. Raises ``BadRequest``
    for malformed bodies or a second file, ``PayloadTooLarge`` past ``max_body`` bytes in all
    (or through the sink, past its cap on the file).
    """
    _, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if not boundary:
        raise BadRequest("multipart body without a boundary")
    events = _Events()
    parser = MultipartParser(boundary, events.callbacks())
    result, part, received = MultipartResult(), _Part(), 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > max_body:
                raise PayloadTooLarge(f"the request body is larger than {max_body} bytes")
            parser.write(chunk)
            for kind, data in events.items:
                part = _handle(kind, data, part, result, sink, file_field)
            events.items.clear()
        parser.finalize()
    except FormParserError as exc:
        raise BadRequest("malformed multipart body") from exc
    return result


def _handle(
    kind: str, data: bytes, part: _Part, result: MultipartResult, sink: UploadSink, file_field: str
) -> _Part:
    if kind == "begin":
        return _Part()
    if kind == "disposition":
        _, options = parse_options_header(data)
        part.name = options.get(b"name", b"").decode("utf-8", "replace")
        if part.name == file_field:
            if result.has_file:
                raise BadRequest(f"more than one {file_field!r} part")
            result.has_file = True
            raw_name = options.get(b"filename")
            result.filename = raw_name.decode("utf-8", "replace") if raw_name else None
    elif kind == "data":
        if part.name == file_field:
            sink.write(data)
        else:
            part.data += data
            if len(part.data) > FIELD_LIMIT:
                raise PayloadTooLarge(f"form field {part.name!r} is over {FIELD_LIMIT} bytes")
    elif kind == "end" and part.name != file_field:
        if len(result.fields) >= MAX_FIELDS:
            raise BadRequest("too many form fields")
        result.fields[part.name] = part.data.decode("utf-8", "replace")
        if part.name == "task":
            _apply_task(result.fields["task"], sink)
    return part


def _apply_task(value: str, sink: UploadSink) -> None:
    task = parse_task(value)
    if sink.task is None:
        sink.set_task(task)
    elif sink.task != task:
        raise UnprocessableRequest(
            "the form field task differs from the task query parameter",
            errors=[{"field": "task", "message": "differs from the query parameter"}],
        )
