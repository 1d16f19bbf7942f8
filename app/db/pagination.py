"""Keyset pagination over time-sortable string ids (``new_id``): newest first."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session


def newest_first_page(
    session: Session,
    query: Select[Any],
    id_column: InstrumentedAttribute[Any],
    *,
    after: str | None,
    limit: int,
) -> tuple[Sequence[Any], bool]:
    """Up to ``limit`` rows of ``query`` older than the id ``after``; and whether more follow.

    ``query`` must already be scoped to one tenant. One extra row is fetched to tell
    ``has_more`` without counting.
    """
    if after is not None:
        query = query.where(id_column < after)
    rows = session.scalars(query.order_by(id_column.desc()).limit(limit + 1)).all()
    return rows[:limit], len(rows) > limit
