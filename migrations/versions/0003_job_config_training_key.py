"""Stored tune job configs use the engine's vocabulary: ``training``, not ``hyperparameters``.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04

The API still says ``hyperparameters`` (``app.jobs.vocabulary`` renames at the HTTP edge);
only the stored ``jobs.config`` key changes, so the worker hands the knobs to the engine as
stored. No schema change. The rows are read and written through SQLAlchemy's JSON type, so
the same code runs on SQLite and PostgreSQL (online only: it reads the rows it rewrites).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
JOBS = sa.table(
    "jobs",
    sa.column("id", sa.String(40)),
    sa.column("kind", sa.String(16)),
    sa.column("config", JSON),
)


def upgrade() -> None:
    rename_config_key("hyperparameters", "training")


def downgrade() -> None:
    rename_config_key("training", "hyperparameters")


def rename_config_key(old: str, new: str) -> None:
    """Rename the top-level key ``old`` of every stored tune job config to ``new`` (in
    place: the other keys and their order stay). A config without ``old`` is left alone."""
    connection = op.get_bind()
    query = sa.select(JOBS.c.id, JOBS.c.config).where(JOBS.c.kind == "tune")
    for job_id, config in connection.execute(query).all():
        if not isinstance(config, dict) or old not in config or new in config:
            continue
        renamed = {new if key == old else key: value for key, value in config.items()}
        connection.execute(sa.update(JOBS).where(JOBS.c.id == job_id).values(config=renamed))
