"""Service test fixtures: every app test runs on SQLite and on PostgreSQL.

The database of each backend is created once per test session and migrated with Alembic
(``upgrade_to_head``): SQLite in a temp file; PostgreSQL in a fresh ``grait_test_<hex>``
database created through the ``postgres`` maintenance database (``GRAIT_TEST_PG_URL``,
default ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) and dropped at the end.
Tests isolate from each other by tenant (a fresh tenant per key) and a fresh data dir.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url

from app.db.migrate import upgrade_to_head
from app.main import create_app
from app.settings import Settings
from tests.app.helpers import MAX_UPLOAD, new_key

PG_ADMIN_URL = os.environ.get(
    "GRAIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextmanager
def empty_postgresql_database() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database with no migration applied; dropped on exit.
    Skips the test when PostgreSQL is unreachable."""
    admin = _psycopg_dsn(PG_ADMIN_URL)
    name = f"grait_test_{uuid.uuid4().hex[:12]}"
    try:
        connection = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL unreachable at {make_url(PG_ADMIN_URL).host}: {exc}")
    with connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session; dropped at the end."""
    with empty_postgresql_database() as url:
        upgrade_to_head(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'grait.db'}"
    upgrade_to_head(url)
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with no migration applied, on each backend (migration tests)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with empty_postgresql_database() as url:
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        max_upload_bytes=MAX_UPLOAD,
        model_allowlist=["acme/extra-7b"],
        # No runner: these tests never run jobs (job tests build their own settings); no
        # webhook dispatcher, whose polls would count among the connections some tests watch.
        local_runner=False,
        webhook_dispatcher=False,
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def auth(app: FastAPI) -> dict[str, str]:
    """Authorization headers of a fresh tenant."""
    key, _ = new_key(app)
    return {"Authorization": f"Bearer {key}"}
