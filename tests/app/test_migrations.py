"""Alembic: the models match the migrations; upgrade and downgrade round-trip."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from app.db.migrate import alembic_config, current_is_head, upgrade_to_head
from app.db.models import Base
from app.db.session import make_engine


def test_models_match_the_migrations(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
    assert current_is_head(database_url)


def test_upgrade_downgrade_round_trip(tmp_path: Path) -> None:
    from alembic import command

    url = f"sqlite:///{tmp_path / 'round.db'}"
    assert not current_is_head(url)
    upgrade_to_head(url)
    assert current_is_head(url)
    command.downgrade(alembic_config(url), "base")
    assert not current_is_head(url)
    upgrade_to_head(url)
    assert current_is_head(url)
