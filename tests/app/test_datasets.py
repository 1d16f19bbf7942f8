"""Datasets API: upload (raw and multipart), list with cursors, get, delete, tenancy."""

from __future__ import annotations

import hashlib
from datetime import datetime

from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.app.helpers import (
    NDJSON,
    assert_problem,
    choice_lines,
    new_key,
    open_lines,
    stored_files,
    upload_raw,
)


def test_raw_upload_returns_the_dataset(client: TestClient, app: FastAPI, auth: dict) -> None:
    body = open_lines(3)
    response = upload_raw(client, auth, body)
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["id"].startswith("ds_") and data["object"] == "dataset"
    assert data["task"] == "open" and data["n_items"] == 3
    assert data["sha256"] == hashlib.sha256(body).hexdigest()
    assert data["size_bytes"] == len(body)
    assert datetime.fromisoformat(data["created_at"]).tzinfo is not None
    [path] = stored_files(app)
    assert path.name == f"{data['id']}.jsonl" and path.read_bytes() == body
    assert client.get(f"/v1/datasets/{data['id']}", headers=auth).json() == data


def test_every_raw_content_type_is_accepted(client: TestClient, auth: dict) -> None:
    for content_type in ("application/jsonl", "text/plain; charset=utf-8"):
        response = client.post(
            "/v1/datasets?task=choice",
            content=choice_lines(),
            headers={**auth, "content-type": content_type},
        )
        assert response.status_code == 201, response.text
        assert response.json()["task"] == "choice"


def test_multipart_upload_with_task_field(client: TestClient, auth: dict) -> None:
    body = choice_lines(4)
    response = client.post(
        "/v1/datasets",
        files={"file": ("mmlu.jsonl", body, "application/x-ndjson")},
        data={"task": "choice"},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    data = response.json()
    assert (data["n_items"], data["filename"]) == (4, "mmlu.jsonl")
    assert data["sha256"] == hashlib.sha256(body).hexdigest()


def test_multipart_task_field_after_the_file_is_validated_too(
    client: TestClient, auth: dict
) -> None:
    # httpx writes form fields first; build the body by hand to put the file first.
    boundary = "grait-boundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        f"Content-Type: application/x-ndjson\r\n\r\n"
    ).encode()
    body += b'{"id": 1, "question": "q?"}\n'  # no answers: must be reported
    body += f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="task"\r\n\r\nopen'.encode()
    body += f"\r\n--{boundary}--\r\n".encode()
    headers = {**auth, "content-type": f"multipart/form-data; boundary={boundary}"}
    response = client.post("/v1/datasets", content=body, headers=headers)
    problem = assert_problem(response, 422, "invalid-dataset")
    assert problem["errors"][0]["line"] == 1 and problem["errors"][0]["field"] == "answers"


def test_hostile_filename_never_becomes_a_path(
    client: TestClient, app: FastAPI, auth: dict
) -> None:
    response = client.post(
        "/v1/datasets",
        files={"file": ("../../x.jsonl", open_lines(1))},
        data={"task": "open"},
        headers=auth,
    )
    assert response.status_code == 201, response.text
    data = response.json()
    assert data["filename"] == "x.jsonl"
    root = app.state.store.root
    assert [path.relative_to(root).as_posix() for path in stored_files(app)] == [
        f"datasets/{data['id']}.jsonl"
    ]
    assert not (root.parent / "x.jsonl").exists() and not (root / "x.jsonl").exists()


def test_pagination_over_five_datasets(client: TestClient, auth: dict) -> None:
    created = [upload_raw(client, auth, open_lines(1, start=i)).json()["id"] for i in range(5)]
    seen, pages, after = [], [], None
    while True:
        query = "limit=2" + (f"&after={after}" if after else "")
        page = client.get(f"/v1/datasets?{query}", headers=auth).json()
        assert page["object"] == "list"
        pages.append((len(page["data"]), page["has_more"]))
        seen += [item["id"] for item in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert pages == [(2, True), (2, True), (1, False)]
    assert seen == sorted(created, reverse=True)  # newest first, no repeats


def test_delete_removes_row_and_file(client: TestClient, app: FastAPI, auth: dict) -> None:
    dataset_id = upload_raw(client, auth, open_lines(2)).json()["id"]
    assert len(stored_files(app)) == 1
    response = client.delete(f"/v1/datasets/{dataset_id}", headers=auth)
    assert response.status_code == 204 and response.content == b""
    assert stored_files(app) == []
    assert_problem(client.get(f"/v1/datasets/{dataset_id}", headers=auth), 404, "not-found")
    assert_problem(client.delete(f"/v1/datasets/{dataset_id}", headers=auth), 404)


def test_other_tenants_dataset_is_not_found(client: TestClient, app: FastAPI, auth: dict) -> None:
    dataset_id = upload_raw(client, auth, open_lines(2)).json()["id"]
    other_key, _ = new_key(app)
    other = {"Authorization": f"Bearer {other_key}"}
    assert_problem(client.get(f"/v1/datasets/{dataset_id}", headers=other), 404, "not-found")
    assert_problem(client.delete(f"/v1/datasets/{dataset_id}", headers=other), 404)
    assert client.get("/v1/datasets", headers=other).json()["data"] == []
    upload_raw(client, other, open_lines(1))
    mine = client.get("/v1/datasets", headers=auth).json()["data"]
    assert [item["id"] for item in mine] == [dataset_id]
    assert len(stored_files(app)) == 2  # the other tenant's delete removed nothing


def test_models_lists_the_allowlist(client: TestClient, auth: dict) -> None:
    response = client.get("/v1/models", headers=auth)
    assert response.status_code == 200
    assert response.json() == {
        "object": "list",
        "data": [
            {"id": "toyworld/small", "object": "model"},
            {"id": "toyworld/tiny", "object": "model"},
            {"id": "acme/extra-7b", "object": "model"},
        ],
    }


def test_upload_holds_no_database_connection_while_streaming(
    app: FastAPI, client: TestClient, auth: dict[str, str]
) -> None:
    """A long upload must not keep a pooled connection idle while its body arrives."""
    seen: list[int] = []
    lines = open_lines(40).splitlines(keepends=True)

    def body():  # noqa: ANN202 - a generator of request chunks
        for index, line in enumerate(lines):
            if index == len(lines) // 2:
                seen.append(app.state.engine.pool.checkedout())
            yield line

    response = client.post("/v1/datasets?task=open", content=body(), headers={**auth, **NDJSON})
    assert response.status_code == 201, response.text
    assert seen == [0]
