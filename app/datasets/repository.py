"""Queries of datasets, scoped by tenant (a dataset of another tenant is simply not found).

Like ``app.jobs.repository`` for jobs: every dataset query of the service, the API and the
worker goes through ``DatasetRepository``. It adds and flushes; it never commits (the unit
of work does, once).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Dataset, Job, dataset_refs
from app.db.pagination import newest_first_page
from app.jobs.states import ACTIVE_STATUSES


class DatasetRepository:
    """Datasets of one tenant."""

    def __init__(self, session: Session, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    def get(self, dataset_id: str) -> Dataset | None:
        query = select(Dataset).where(Dataset.tenant_id == self.tenant_id, Dataset.id == dataset_id)
        return self.session.scalar(query)

    def get_share_locked(self, dataset_id: str) -> Dataset | None:
        """The dataset (or None), its row share-locked until the commit (PostgreSQL; SQLite
        locks on write): a job being created with it keeps a concurrent delete waiting, and
        the delete then sees that job (``lock`` below takes the exclusive lock)."""
        query = (
            select(Dataset)
            .where(Dataset.tenant_id == self.tenant_id, Dataset.id == dataset_id)
            .with_for_update(read=True)
        )
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
