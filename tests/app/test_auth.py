"""API keys: format, hashing, bearer auth on every /v1 route."""

from __future__ import annotations

import hashlib

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.auth import KEY_PATTERN, create_api_key
from app.db.models import ApiKey
from app.db.session import unit_of_work
from tests.app.helpers import assert_problem, new_key


def test_key_format_and_only_the_hash_is_stored(app: FastAPI) -> None:
    key, tenant_id = new_key(app, "acme-format")
    match = KEY_PATTERN.fullmatch(key)
    assert match is not None
    prefix, secret = match.groups()
    with unit_of_work(app.state.session_factory) as session:
        record = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
        assert record is not None and record.tenant_id == tenant_id
        assert record.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
        assert secret not in {record.secret_sha256, record.prefix, record.id}


def test_second_key_for_a_tenant_shares_the_tenant(app: FastAPI) -> None:
    _, first = new_key(app, "acme-two-keys")
    _, second = new_key(app, "acme-two-keys")
    assert first == second


def test_bad_tenant_name_is_refused(app: FastAPI) -> None:
    with unit_of_work(app.state.session_factory) as session, pytest.raises(ValueError):
        create_api_key(session, "../etc")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-key",
        "Bearer grait_000000000000_" + "x" * 43,
    ],
    ids=["missing", "empty", "basic", "malformed", "unknown-prefix"],
)
def test_missing_or_invalid_key_is_401(client: TestClient, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in [("GET", "/v1/datasets"), ("POST", "/v1/datasets"), ("GET", "/v1/models")]:
        response = client.request(method, path, headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["www-authenticate"] == "Bearer"


def test_right_prefix_wrong_secret_is_401(client: TestClient, app: FastAPI) -> None:
    key, _ = new_key(app)
    prefix = KEY_PATTERN.fullmatch(key).group(1)  # type: ignore[union-attr]
    wrong = f"grait_{prefix}_{'A' * 43}"
    response = client.get("/v1/datasets", headers={"Authorization": f"Bearer {wrong}"})
    assert_problem(response, 401, "unauthorized")
    assert client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"}).status_code == 200
