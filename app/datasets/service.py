"""Dataset use cases: create from an upload, delete (row and file)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy.orm import Session

from app.datasets.repository import DatasetRepository
from app.datasets.sink import UploadSink
from app.datasets.upload import receive
from app.db.models import Dataset
from app.db.session import after_commit, after_rollback
from app.db.types import new_id
from app.errors import Conflict
from app.storage import ArtifactStore
from grait_engine.records.item import Task


async def create_dataset(
    session: Session,
    tenant_id: str,
    store: ArtifactStore,
    stream: AsyncIterator[bytes],
    *,
    max_bytes: int,
    task: Task | None,
    content_type: str | None,
    content_length: str | None,
    filename: str | None,
) -> Dataset:
    """Receive, validate and store an upload; add its row (the caller's unit of work commits).

    On any problem the temp file is removed and nothing is stored. If the commit fails
    later, the stored file is removed too.
    """
    # End the read-only transaction of authentication (nothing is pending), so a long
    # upload does not keep a pooled database connection idle; the insert opens a new one.
    session.commit()
    with UploadSink(store, max_bytes, task) as sink:
        received = await receive(
            stream,
            sink,
            content_type=content_type,
            content_length=content_length,
            filename=filename,
        )
        dataset_id = new_id("ds")
        relative = store.dataset_path(dataset_id)
        after_rollback(session, lambda: store.remove(relative))
        sink.store_as(relative)
    summary = received.summary
    dataset = Dataset(
        id=dataset_id,
        tenant_id=tenant_id,
        task=summary.task,
        n_items=summary.n_items,
        sha256=summary.sha256,
        size_bytes=summary.n_bytes,
        filename=received.filename,
        storage_path=relative,
    )
    return DatasetRepository(session, tenant_id).add(dataset)


def delete_dataset(session: Session, store: ArtifactStore, dataset: Dataset) -> None:
    """Delete the row; remove the file once the deletion is committed.

    A dataset that a queued or running job uses is not deleted: 409 naming the job(s).
    The row is locked first (PostgreSQL), so a job created concurrently with this delete
    (its creation share-locks the row) is either seen here or sees no dataset."""
    repository = DatasetRepository(session, dataset.tenant_id)
    repository.lock(dataset.id)
    users = repository.active_jobs_using(dataset.id)
    if users:
        shown = ", ".join(users[:5]) + (f" and {len(users) - 5} more" if len(users) > 5 else "")
        raise Conflict(
            f"dataset {dataset.id} is used by queued or running job(s) {shown}; "
            "cancel them or wait for them to finish, then delete it",
            jobs=users[:20],
        )
    repository.delete(dataset)
    relative = dataset.storage_path
    after_commit(session, lambda: store.remove(relative))
