"""Bad dataset uploads: each gets a clear 4xx problem and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from httpx import Response

from tests.app.helpers import (
    MAX_UPLOAD,
    NDJSON,
    assert_nothing_stored,
    assert_problem,
    choice_lines,
    open_lines,
)

Send = Callable[[TestClient, dict[str, str]], Response]
BOUNDARY = "b0undary"


def raw(body: bytes, query: str = "task=open", headers: dict | None = None) -> Send:
    def send(client: TestClient, auth: dict[str, str]) -> Response:
        return client.post(
            f"/v1/datasets?{query}", content=body, headers={**auth, **(headers or NDJSON)}
        )

    return send


def form(files: dict | None, data: dict | None) -> Send:
    def send(client: TestClient, auth: dict[str, str]) -> Response:
        return client.post("/v1/datasets", files=files, data=data, headers=auth)

    return send


def handmade(body: bytes, content_type: str = f"multipart/form-data; boundary={BOUNDARY}") -> Send:
    def send(client: TestClient, auth: dict[str, str]) -> Response:
        return client.post(
            "/v1/datasets", content=body, headers={**auth, "content-type": content_type}
        )

    return send


def file_part(name: str = "file", content: bytes = b"") -> bytes:
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="a.jsonl"'
    return head.encode() + b"\r\n\r\n" + content + b"\r\n"


OVERSIZE = open_lines(MAX_UPLOAD // 60 + 50)
TASK_ONLY = (
    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="task"\r\n\r\nopen\r\n--{BOUNDARY}--\r\n'
).encode()
TWO_FILES = file_part(content=open_lines(1)) + file_part(content=open_lines(1))
CASES: dict[str, tuple[Send, int, str]] = {
    "malformed-json": (raw(open_lines(2) + b"{not json\n"), 422, "invalid-dataset"),
    "task-mismatch": (raw(choice_lines(2), "task=open"), 422, "invalid-dataset"),
    "duplicate-ids": (raw(open_lines(2) + open_lines(1)), 422, "invalid-dataset"),
    "invalid-utf8": (
        raw(b'{"id": "q", "question": "\xff", "answers": ["a"]}\n'),
        422,
        "invalid-dataset",
    ),
    "empty-body": (raw(b""), 422, "invalid-dataset"),
    "missing-task": (raw(open_lines(1), "x=1"), 422, "validation-error"),
    "unknown-task": (raw(open_lines(1), "task=essay"), 422, "validation-error"),
    "unsupported-type": (raw(b"{}", headers={"content-type": "application/json"}), 415, None),
    "oversize-raw": (raw(OVERSIZE), 413, "payload-too-large"),
    "oversize-multipart": (form({"file": ("a.jsonl", OVERSIZE)}, {"task": "open"}), 413, None),
    "multipart-no-file": (handmade(TASK_ONLY), 422, "validation-error"),
    "urlencoded-form": (form(None, {"task": "open"}), 415, "unsupported-media-type"),
    "multipart-bad-task": (form({"file": ("a", open_lines(1))}, {"task": "x"}), 422, None),
    "multipart-no-task": (form({"file": ("a", open_lines(1))}, None), 422, "validation-error"),
    "multipart-no-boundary": (handmade(b"x", "multipart/form-data"), 400, "bad-request"),
    "multipart-two-files": (handmade(TWO_FILES + f"--{BOUNDARY}--\r\n".encode()), 400, None),
    "multipart-garbage": (handmade(b"garbage without any boundary"), 400, "bad-request"),
}
for name, (_, status, _slug) in CASES.items():
    assert 400 <= status < 500, name
CASES["unsupported-type"] = (CASES["unsupported-type"][0], 415, "unsupported-media-type")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_upload_is_a_problem_and_stores_nothing(
    case: str, client: TestClient, app: FastAPI, auth: dict[str, str]
) -> None:
    send, status, slug = CASES[case]
    assert_problem(send(client, auth), status, slug)
    assert_nothing_stored(client, app, auth)


def test_invalid_dataset_lists_lines_and_fields(
    client: TestClient, app: FastAPI, auth: dict[str, str]
) -> None:
    body = open_lines(1) + b"\n" + b'{"id": "q9", "question": ""}\n' + b"[1, 2]\n"
    problem = assert_problem(raw(body)(client, auth), 422, "invalid-dataset")
    assert problem["n_problems"] == len(problem["errors"]) >= 3
    lines = {(error["line"], error["field"]) for error in problem["errors"]}
    assert (3, "question") in lines and (4, None) in lines
    assert_nothing_stored(client, app, auth)


def test_only_the_first_20_problems_are_listed(
    client: TestClient, app: FastAPI, auth: dict[str, str]
) -> None:
    problem = assert_problem(raw(b"nope\n" * 30)(client, auth), 422, "invalid-dataset")
    assert len(problem["errors"]) == 20 and problem["n_problems"] == 30
    assert [error["line"] for error in problem["errors"]] == list(range(1, 21))
    assert_nothing_stored(client, app, auth)


@pytest.mark.parametrize(
    "query",
    [
        "after=zz",
        "after=ds_123",
        "after=job_0123456789abcdef01234567",
        "limit=0",
        "limit=101",
        "limit=x",
    ],
)
def test_bad_list_parameters_are_problems(client: TestClient, auth: dict, query: str) -> None:
    response = client.get(f"/v1/datasets?{query}", headers=auth)
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)


def test_unknown_route_and_method_are_problems(client: TestClient, auth: dict) -> None:
    assert_problem(client.get("/v1/nothing-here", headers=auth), 404)
    assert_problem(client.put("/v1/datasets", headers=auth), 405)


def test_a_lone_surrogate_escape_is_refused_naming_the_line(
    client: TestClient, app: FastAPI, auth: dict[str, str]
) -> None:
    """``"\\ud800"`` is JSON syntax but not text: every job on such a dataset used to fail
    later with a cryptic tokenizer error. A paired escape (an emoji) stays valid."""
    good = b'{"id": "e1", "question": "Smile \\ud83d\\ude00?", "answers": ["yes"]}\n'
    bad = b'{"id": "e2", "question": "Broken \\ud800 text?", "answers": ["no"]}\n'
    problem = assert_problem(raw(good + bad)(client, auth), 422, "invalid-dataset")
    assert [(e["line"], e["field"]) for e in problem["errors"]] == [(2, None)]
    assert "lone surrogate" in problem["errors"][0]["message"]
    assert_nothing_stored(client, app, auth)
    assert raw(good)(client, auth).status_code == 201
