"""Response bodies (pydantic)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from app.api.pagination import ListOf, Page
from app.db.models import Dataset


class DatasetOut(BaseModel):
    id: str
    object: Literal["dataset"] = "dataset"
    task: str
    n_items: int
    sha256: str
    size_bytes: int
    filename: str | None
    created_at: datetime

    @classmethod
    def of(cls, dataset: Dataset) -> DatasetOut:
        return cls(
            id=dataset.id,
            task=dataset.task,
            n_items=dataset.n_items,
            sha256=dataset.sha256,
            size_bytes=dataset.size_bytes,
            filename=dataset.filename,
            created_at=dataset.created_at,
        )


class DatasetList(Page[DatasetOut]):
    """A page of the tenant's datasets, newest first."""


class ModelOut(BaseModel):
    id: str
    object: Literal["model"] = "model"


class ModelList(ListOf[ModelOut]):
    """The models this server serves."""
