"""``/v1/models``: the model allowlist."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.deps import SettingsDep, TenantDep
from app.api.schemas import ModelList, ModelOut

router = APIRouter(prefix="/v1/models", tags=["models"])


@router.get("", response_model=ModelList)
def list_models(settings: SettingsDep, _tenant: TenantDep) -> ModelList:
    """``toyworld/small``, ``toyworld/tiny`` and the configured ``GRAIT_MODEL_ALLOWLIST``."""
    return ModelList(data=[ModelOut(id=name) for name in settings.models])
