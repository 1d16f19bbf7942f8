"""Initial schema: tenants, api_keys, datasets, jobs, job_events, job_metrics.

Revision ID: 0001
Revises:
Create Date: 2026-11-24

Types are spelled out here (not imported from the app) so this revision never changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def fk(column: str, table: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    name = f"fk_{table}_{column}_{'jobs' if column.endswith('job_id') else 'tenants'}"
    target = "jobs.id" if column.endswith("job_id") else "tenants.id"
    return sa.ForeignKeyConstraint([column], [target], name=name, ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("name", name="uq_tenants_name"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("prefix", sa.String(32), nullable=False),
        sa.Column("secret_sha256", sa.String(64), nullable=False),
        time("created_at"),
        time("revoked_at", nullable=True),
        fk("tenant_id", "api_keys"),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("prefix", name="uq_api_keys_prefix"),
    )
    op.create_index("ix_api_keys_tenant_id", "api_keys", ["tenant_id"])
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("storage_path", sa.String(255), nullable=False),
        time("created_at"),
        fk("tenant_id", "datasets"),
        sa.PrimaryKeyConstraint("id", name="pk_datasets"),
    )
    op.create_index("ix_datasets_tenant_id_id", "datasets", ["tenant_id", "id"])
    create_jobs()
    create_job_events_and_metrics()


def create_jobs() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("method", sa.String(32), nullable=False),
        sa.Column("task", sa.String(16), nullable=False),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("progress_done", sa.Integer(), nullable=False),
        sa.Column("progress_total", sa.Integer(), nullable=True),
        sa.Column("eta_seconds", sa.Float(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        time("lease_expires_at", nullable=True),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("config", JSON, nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=True),
        sa.Column("request_sha256", sa.String(64), nullable=True),
        sa.Column("parent_job_id", sa.String(40), nullable=True),
        time("created_at"),
        time("updated_at"),
        time("started_at", nullable=True),
        time("finished_at", nullable=True),
        sa.Column("result", JSON, nullable=True),
        fk("parent_job_id", "jobs", ondelete="SET NULL"),
        fk("tenant_id", "jobs"),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint(
            "tenant_id", "idempotency_key", name="uq_jobs_tenant_id_idempotency_key"
        ),
    )
    op.create_index("ix_jobs_tenant_id_id", "jobs", ["tenant_id", "id"])
    op.create_index("ix_jobs_status_lease_expires_at", "jobs", ["status", "lease_expires_at"])


def create_job_events_and_metrics() -> None:
    op.create_table(
        "job_events",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        time("created_at"),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("stage", sa.String(32), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("data", JSON, nullable=True),
        fk("job_id", "job_events"),
        sa.PrimaryKeyConstraint("id", name="pk_job_events"),
    )
    op.create_index("ix_job_events_job_id_id", "job_events", ["job_id", "id"])
    op.create_table(
        "job_metrics",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("job_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        time("created_at"),
        fk("job_id", "job_metrics"),
        sa.PrimaryKeyConstraint("id", name="pk_job_metrics"),
    )
    op.create_index("ix_job_metrics_job_id_name_step", "job_metrics", ["job_id", "name", "step"])


def downgrade() -> None:
    for table in ("job_metrics", "job_events", "jobs", "datasets", "api_keys", "tenants"):
        op.drop_table(table)
