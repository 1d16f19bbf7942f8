"""One session per request, streaming size cap, and no orphan file when a write fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.datasets import service
from app.datasets.sink import UploadSink
from app.errors import PayloadTooLarge
from app.storage import ArtifactStore
from tests.app.helpers import (
    MAX_UPLOAD,
    NDJSON,
    assert_nothing_stored,
    assert_problem,
    open_lines,
    upload_raw,
)


def test_one_session_per_request(client: TestClient, app: FastAPI, auth: dict) -> None:
    factory, opened = app.state.session_factory, []

    def counting_factory():
        opened.append(1)
        return factory()

    app.state.session_factory = counting_factory
    upload_raw(client, auth, open_lines(1))
    client.get("/v1/datasets", headers=auth)
    assert len(opened) == 2


def test_size_cap_is_enforced_while_streaming(client: TestClient, app: FastAPI, auth: dict) -> None:
    chunk = open_lines(100)
    sent = []

    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        while sum(sent) <= 3 * MAX_UPLOAD:
            sent.append(len(chunk))
            yield chunk

    response = client.post("/v1/datasets?task=open", content=body(), headers={**auth, **NDJSON})
    assert_problem(response, 413, "payload-too-large")
    assert response.headers["connection"] == "close"  # the rest of the body is not drained
    assert_nothing_stored(client, app, auth)


def test_sink_refuses_the_chunk_that_crosses_the_cap(tmp_path) -> None:
    store = ArtifactStore(tmp_path)
    with pytest.raises(PayloadTooLarge), UploadSink(store, max_bytes=100, task="open") as sink:
        sink.write(b"x" * 60)
        sink.write(b"x" * 60)
    assert sink.size == 120 and list(store.tmp_dir.iterdir()) == []


def test_failed_write_leaves_no_file(
    app: FastAPI, auth: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_add(self, dataset):  # the row cannot be written after the file was stored
        raise RuntimeError("database went away")

    monkeypatch.setattr(service.DatasetRepository, "add", broken_add)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = assert_problem(upload_raw(client, auth, open_lines(2)), 500, "internal-error")
        assert "went away" not in body["detail"]
        monkeypatch.undo()
        assert_nothing_stored(client, app, auth)
