"""Alembic from code: upgrade a database to head, or ask whether it is at head."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

from app.db.session import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic config for ``url`` using the project's ``migrations/`` scripts."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py reads the URL from here, not from the settings, so tests can point anywhere.
    config.attributes["url"] = url
    return config


def upgrade_to_head(url: str) -> None:
    """Apply every migration not yet applied to the database at ``url``."""
    command.upgrade(alembic_config(url), "head")


@lru_cache
def head_revisions() -> frozenset[str]:
    """The head revision(s) of the migration scripts (read once)."""
    return frozenset(ScriptDirectory.from_config(alembic_config("")).get_heads())


def is_head(connection: Connection) -> bool:
    """True when the database behind ``connection`` has every migration applied."""
    current = set(MigrationContext.configure(connection).get_current_heads())
    return current == head_revisions()


def current_is_head(url: str) -> bool:
    """True when the database at ``url`` has every migration applied."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return is_head(connection)
    finally:
        engine.dispose()
