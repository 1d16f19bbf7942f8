"""Repositories of tenants and API keys (authentication). Every query of a tenant-owned table
is filtered by ``tenant_id``; the domains keep theirs (``app.datasets.repository``,
``app.jobs.repository``).

A row of another tenant is simply not found (the API answers 404). Repositories add and
flush; they never commit (the unit of work does, once).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import ApiKey, Tenant
from app.db.types import new_id


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
