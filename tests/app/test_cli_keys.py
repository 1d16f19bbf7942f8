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
