"""``grait keys create --tenant NAME`` (app.cli_keys)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import cli_keys
from app.main import create_app
from app.settings import get_settings


@pytest.fixture
def env_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GRAIT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("GRAIT_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli_keys.add_arguments(parser)
    return parser.parse_args(argv)


def test_keys_create_prints_a_working_key_once(env_settings, capsys) -> None:
    assert cli_keys.run(parse(["create", "--tenant", "acme"])) == 0
    out, err = capsys.readouterr()
    key = out.strip()
    assert key.startswith("grait_") and key not in err
    with TestClient(create_app(env_settings)) as client:
        response = client.get("/v1/datasets", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200


def test_keys_create_refuses_a_bad_tenant_name(env_settings, capsys) -> None:
    assert cli_keys.run(parse(["create", "--tenant", "a b"])) == 2
    assert capsys.readouterr().out == ""


def test_keys_list_shows_prefixes_never_secrets(env_settings, capsys) -> None:
    cli_keys.run(parse(["create", "--tenant", "acme"]))
    cli_keys.run(parse(["create", "--tenant", "other"]))
    keys = capsys.readouterr().out.split()
    assert cli_keys.run(parse(["list", "--tenant", "acme"])) == 0
    out = capsys.readouterr().out
    prefix = keys[0][:18]  # grait_<12 hex>
    assert prefix in out and "acme" in out and "active" in out
    assert keys[0] not in out and "other" not in out


def test_keys_revoke_ends_api_and_ui_access(env_settings, capsys) -> None:
    cli_keys.run(parse(["create", "--tenant", "acme"]))
    key = capsys.readouterr().out.strip()
    bearer = {"Authorization": f"Bearer {key}"}
    uncached = env_settings.model_copy(update={"auth_cache_seconds": 0})
    with TestClient(create_app(uncached)) as client:
        login = client.post("/ui/login", data={"api_key": key}, follow_redirects=False)
        assert login.status_code == 303 and client.get("/ui/jobs").status_code == 200
        prefix = key[:18]  # grait_<12 hex>
        assert cli_keys.run(parse(["revoke", prefix])) == 0
        assert client.get("/v1/datasets", headers=bearer).status_code == 401
        assert client.get("/ui/jobs", follow_redirects=False).status_code == 303
    assert cli_keys.run(parse(["list"])) == 0
    assert "revoked" in capsys.readouterr().out
    assert cli_keys.run(parse(["revoke", prefix])) == 1  # already revoked
    assert cli_keys.run(parse(["revoke", "nope"])) == 2
