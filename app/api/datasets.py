"""``/v1/datasets``: upload (raw JSONL or multipart), list, get, delete."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from app.api.deps import SessionDep, SettingsDep, StoreDep, TenantDep
from app.api.pagination import After, Limit, check_cursor
from app.api.schemas import DatasetList, DatasetOut
from app.datasets.repository import DatasetRepository
from app.datasets.service import create_dataset, delete_dataset
from app.db.models import Dataset
from app.errors import NotFound

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
_JSONL_BODY = {"schema": {"type": "string", "format": "binary"}}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-ndjson": _JSONL_BODY,
            "application/jsonl": _JSONL_BODY,
            "text/plain": _JSONL_BODY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "task": {"type": "string", "enum": ["open", "choice"]},
                    },
                }
            },
        },
    }
}
TaskParam = Annotated[Literal["open", "choice"] | None, Query(description="open or choice")]
FilenameParam = Annotated[str | None, Query(max_length=255, description="display name")]


@router.post("", status_code=201, response_model=DatasetOut, openapi_extra=UPLOAD_BODY)
async def upload_dataset(
    request: Request,
    session: SessionDep,
    tenant: TenantDep,
    settings: SettingsDep,
    store: StoreDep,
    task: TaskParam = None,
    filename: FilenameParam = None,
) -> DatasetOut:
    """Stream, validate and store a dataset; 201, or 413/415/422 with nothing stored."""
    dataset = await create_dataset(
        session,
        tenant.id,
        store,
        request.stream(),
        max_bytes=settings.max_upload_bytes,
        task=task,
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        filename=filename,
    )
    return DatasetOut.of(dataset)


@router.get("", response_model=DatasetList)
def list_datasets(
    session: SessionDep, tenant: TenantDep, after: After = None, limit: Limit = 20
) -> DatasetList:
    """The tenant's datasets, newest first."""
    rows, has_more = DatasetRepository(session, tenant.id).list(
        after=check_cursor(after, "ds"), limit=limit
    )
    return DatasetList(data=[DatasetOut.of(row) for row in rows], has_more=has_more)


def _get_or_404(session: Session, tenant_id: str, dataset_id: str) -> Dataset:
    dataset = DatasetRepository(session, tenant_id).get(dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id!r}")
    return dataset


@router.get("/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, session: SessionDep, tenant: TenantDep) -> DatasetOut:
    return DatasetOut.of(_get_or_404(session, tenant.id, dataset_id))


@router.delete("/{dataset_id}", status_code=204)
def remove_dataset(
    dataset_id: str, session: SessionDep, tenant: TenantDep, store: StoreDep
) -> Response:
    """Delete the dataset row; its file is removed once the deletion is committed. 409 while
    a queued or running job uses the dataset."""
    delete_dataset(session, store, _get_or_404(session, tenant.id, dataset_id))
    return Response(status_code=204)
