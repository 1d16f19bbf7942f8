"""``UploadSink``: the bytes of one uploaded dataset file, as they arrive.

Each chunk is counted against the size cap, written to a temp file and fed to the engine's
``StreamingValidator`` (which also hashes it). The task may become known only after some
bytes arrived (a multipart ``task`` field after the file): the bytes so far are then replayed
from the temp file, in chunks. Nothing is held in memory beyond one chunk and one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from app.errors import PayloadTooLarge, UnprocessableRequest
from app.storage import ArtifactStore
from grait_engine.records.item import TASKS, Task
from grait_engine.records.problems import Summary
from grait_engine.records.validate import StreamingValidator

REPLAY_CHUNK = 1 << 16


def parse_task(value: str) -> Task:
    """A task name from a client (``open`` or ``choice``), else a 422 problem."""
    for task in TASKS:
        if value == task:
            return task
    raise UnprocessableRequest(
        f"task must be one of {', '.join(TASKS)}",
        errors=[{"field": "task", "message": f"expected one of {', '.join(TASKS)}"}],
    )


class UploadSink:
    """Use as a context manager; the temp file is removed at exit unless ``store``d."""

    def __init__(self, store: ArtifactStore, max_bytes: int, task: Task | None = None) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.size = 0
        self._file, self._path = store.open_temp()
        self._validator: StreamingValidator | None = None
        if task is not None:
            self.set_task(task)

    def __enter__(self) -> UploadSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()

    @property
    def task(self) -> Task | None:
        return self._validator.task if self._validator is not None else None

    def set_task(self, task: Task) -> None:
        """Start validating as ``task``; bytes already received are validated now."""
        if self._validator is not None:
            raise ValueError("the task is already set")
        self._validator = StreamingValidator(task)
        self._file.flush()
        with open(self._path, "rb") as replay:
            while block := replay.read(REPLAY_CHUNK):
                self._validator.feed(block)

    def write(self, chunk: bytes) -> None:
        """Take the next bytes of the file; ``PayloadTooLarge`` past ``max_bytes``."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise PayloadTooLarge(
                f"the dataset is larger than the limit of {self.max_bytes} bytes",
                max_bytes=self.max_bytes,
            )
        self._file.write(chunk)
        if self._validator is not None:
            self._validator.feed(chunk)

    def finish(self) -> Summary:
        """End of the file: the final validation summary (with sha256 and size)."""
        if self._validator is None:
            raise ValueError("the task is not set")
        self._validator.finish()
        self._file.flush()
        return self._validator.summary

    def store_as(self, relative: str) -> Path:
        """Move the (validated) temp file into the store at ``relative``."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        return self.store.move_in(self._path, relative)

    def discard(self) -> None:
        """Close and remove the temp file (a no-op once stored)."""
        if not self._file.closed:
            self._file.close()
        Path(self._path).unlink(missing_ok=True)
