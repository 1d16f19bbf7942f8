"""Repositories: every query of a tenant-owned table is filtered by ``tenant_id``.

A row of another tenant is simply not found (the API answers 404). Repositories add and
flush; they never commit (the unit of work does, once).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ApiKey, Dataset, Job, Tenant, dataset_refs
from app.db.pagination import newest_first_page
from app.db.types import new_id
from app.jobs.states import ACTIVE_STATUSES


class TenantRepository:
    """Tenants by name (keys are created for a tenant name)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_by_name(self, name: str) -> Tenant | None:
        return self.session.scalar(select(Tenant).where(Tenant.name == name))

    def get_or_create(self, name: str) -> Tenant:
        tenant = self.get_by_name(name)
        if tenant is None:
            tenant = Tenant(id=new_id("ten"), name=name)
            self.session.add(tenant)
            self.session.flush()
        return tenant


class ApiKeyRepository:
    """API key rows, found by their public prefix (the secret's hash is checked by the caller)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get_active_by_prefix(self, prefix: str) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.prefix == prefix, ApiKey.revoked_at.is_(None))
        return self.session.scalar(query)

    def add(self, key: ApiKey) -> ApiKey:
        self.session.add(key)
        self.session.flush()
        return key


class DatasetRepository:
    """Datasets of one tenant."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def get(self, dataset_id: str) -> Dataset | None:
        query = select(Dataset).where(Dataset.tenant_id == self.tenant_id, Dataset.id == dataset_id)
        return self.session.scalar(query)

    def list(self, *, after: str | None, limit: int) -> tuple[Sequence[Dataset], bool]:
        """Newest first; ``after`` is the id of the last dataset of the previous page.

        Returns (up to ``limit`` datasets, whether more follow).
        """
        query = select(Dataset).where(Dataset.tenant_id == self.tenant_id)
        return newest_first_page(self.session, query, Dataset.id, after=after, limit=limit)

    def add(self, dataset: Dataset) -> Dataset:
        if dataset.tenant_id != self.tenant_id:
            raise ValueError("dataset of another tenant")
        self.session.add(dataset)
        self.session.flush()
        return dataset

    def lock(self, dataset_id: str) -> None:
        """Lock the dataset's row until the commit (PostgreSQL; SQLite locks on write)."""
        query = select(Dataset.id).where(
            Dataset.tenant_id == self.tenant_id, Dataset.id == dataset_id
        )
        self.session.execute(query.with_for_update())

    # ``builtins.list``: inside the class, ``list`` names the method above.
    def active_jobs_using(self, dataset_id: str) -> builtins.list[str]:
        """Ids of this tenant's queued or running jobs whose config names the dataset
        (as training, shots or evaluation set), oldest first. Active jobs per tenant are few
        (``max_active_jobs_per_tenant``), so their configs are read and checked here."""
        query = (
            select(Job.id, Job.config)
            .where(Job.tenant_id == self.tenant_id, Job.status.in_(ACTIVE_STATUSES))
            .order_by(Job.id)
        )
        users = []
        for job_id, config in self.session.execute(query):
            if dataset_id in dataset_refs(config).values():
                users.append(job_id)
        return users

    def delete(self, dataset: Dataset) -> None:
        if dataset.tenant_id != self.tenant_id:
            raise ValueError("dataset of another tenant")
        self.session.delete(dataset)
        self.session.flush()
