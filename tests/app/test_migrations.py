"""Alembic: the models match the migrations; upgrade and downgrade round-trip, and the data
migrations (0003: stored tune configs say ``training``) rewrite rows both ways."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import postgresql

from app.db.migrate import alembic_config, current_is_head, upgrade_to_head
from app.db.models import Base
from app.db.session import make_engine

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
# The columns of ``jobs`` a row needs at revision 0002 (spelled out: the models may change).
JOBS = sa.table(
    "jobs",
    *(sa.column(name, sa.String()) for name in ("id", "tenant_id", "status", "kind")),
    *(sa.column(name, sa.String()) for name in ("model", "method", "task")),
    *(sa.column(name, sa.Integer()) for name in ("progress_done", "attempt", "max_attempts")),
    sa.column("config", JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)


def test_models_match_the_migrations(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
    assert current_is_head(database_url)


def test_upgrade_downgrade_round_trip(empty_database_url: str) -> None:
    from alembic import command

    url = empty_database_url
    assert not current_is_head(url)
    upgrade_to_head(url)
    assert current_is_head(url)
    command.downgrade(alembic_config(url), "base")
    assert not current_is_head(url)
    upgrade_to_head(url)
    assert current_is_head(url)


def _configs(url: str) -> dict[str, dict[str, Any]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(sa.select(JOBS.c.id, JOBS.c.config)).all()
    finally:
        engine.dispose()
    return {job_id: config for job_id, config in rows}


def test_0003_renames_the_stored_training_knobs_both_ways(empty_database_url: str) -> None:
    """Upgrade: a stored tune config's ``hyperparameters`` becomes ``training`` (the engine's
    name), the rest untouched; other kinds unchanged. Downgrade: back as it was."""
    from alembic import command

    config = alembic_config(empty_database_url)
    command.upgrade(config, "0002")
    knobs = {"lora_r": 4, "epochs": 2, "lr": 0.0002}
    tune = {"model": "m", "task": "choice", "method": {"type": "van"}, "hyperparameters": knobs}
    evaluate = {"kind": "evaluate", "model": "m", "task": "choice", "runtime": {}, "seed": 0}
    now = datetime.now(UTC)
    common = {"tenant_id": "t1", "status": "queued", "model": "m", "method": "van"}
    common |= {"task": "choice", "progress_done": 0, "attempt": 0, "max_attempts": 1}
    common |= {"created_at": now, "updated_at": now}
    engine = make_engine(empty_database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO tenants (id, name, created_at) VALUES ('t1', 't1', :now)"),
                {"now": now},
            )
            connection.execute(
                sa.insert(JOBS),
                [
                    {**common, "id": "job_tune", "kind": "tune", "config": tune},
                    {**common, "id": "job_eval", "kind": "evaluate", "config": evaluate},
                ],
            )
    finally:
        engine.dispose()

    command.upgrade(config, "head")
    upgraded = _configs(empty_database_url)
    assert upgraded["job_tune"]["training"] == knobs
    assert "hyperparameters" not in upgraded["job_tune"]
    assert {k: v for k, v in upgraded["job_tune"].items() if k != "training"} == {
        k: v for k, v in tune.items() if k != "hyperparameters"
    }
    assert upgraded["job_eval"] == evaluate

    command.downgrade(config, "0002")
    assert _configs(empty_database_url) == {"job_tune": tune, "job_eval": evaluate}
