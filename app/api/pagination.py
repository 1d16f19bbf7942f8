"""List answers and cursor pagination: ``ListOf[T]`` (``{object: "list", data}``) and
``Page[T]`` (with ``has_more``), the one envelope of every list; ``after`` is the id of the
last object of the previous page."""

from __future__ import annotations

import re
from typing import Annotated, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import BaseModel

from app.db.types import ID_HEX_LENGTH
from app.errors import InvalidCursor

Limit = Annotated[int, Query(ge=1, le=100, description="page size (1-100)")]
After = Annotated[str | None, Query(max_length=64, description="id of the last object seen")]
Item = TypeVar("Item", bound=BaseModel)


class ListOf(BaseModel, Generic[Item]):
    """A whole list: ``{object: "list", data}``. Each route names its own subclass (such as
    ``ModelList(ListOf[ModelOut])``), so the OpenAPI schema keeps one readable name per list."""

    object: Literal["list"] = "list"
    data: list[Item]


class Page(ListOf[Item], Generic[Item]):
    """One page of a cursor-paginated list: ``has_more`` tells whether a next page exists
    (ask for it with ``after`` = the id of the last object of ``data``)."""

    has_more: bool


def check_cursor(after: str | None, prefix: str) -> str | None:
    """``after`` if it is an id of the listed kind (``<prefix>_<hex>``), else 400."""
    if after is None:
        return None
    if not re.fullmatch(rf"{prefix}_[0-9a-f]{{{ID_HEX_LENGTH}}}", after):
        raise InvalidCursor(f"after must be an id like {prefix}_<{ID_HEX_LENGTH} hex>")
    return after
