"""Service settings: one pydantic-settings class, environment prefix ``GRAIT_``.

``get_settings()`` is cached; tests build ``Settings(...)`` directly and pass it to
``create_app`` (or clear the cache with ``get_settings.cache_clear()``).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Models every deployment serves: the toy knowledge world of grait_engine.toyworld.
BUILTIN_MODELS: tuple[str, ...] = ("toyworld/small", "toyworld/tiny")
MB = 1024 * 1024


class Settings(BaseSettings):
    """Everything the service process reads from its environment (``GRAIT_*``)."""

    model_config = SettingsConfigDict(env_prefix="GRAIT_", extra="ignore")

    data_dir: Path = Path("./grait-data")
    # Empty: the embedded default, ``sqlite:///{data_dir}/grait.db`` (filled in on load).
    database_url: str = ""
    # Empty: ``{data_dir}/artifacts`` (filled in on load).
    artifact_dir: Path | None = None
    queue: Literal["local", "celery"] = "local"
    broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    max_upload_bytes: int = Field(default=100 * MB, gt=0)
    # Comma-separated in the environment (GRAIT_MODEL_ALLOWLIST=org/a,org/b) or a JSON list.
    model_allowlist: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # None: migrate at startup when the database is SQLite (embedded), only check otherwise.
    auto_migrate: bool | None = None

    @field_validator("model_allowlist", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [name.strip() for name in text.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        # Defaults that depend on data_dir: the SQLite file and the artifact directory.
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir}/grait.db"
        if self.artifact_dir is None:
            self.artifact_dir = self.data_dir / "artifacts"
        return self

    @property
    def artifacts(self) -> Path:
        """Where datasets and job artifacts live (server-generated names only)."""
        assert self.artifact_dir is not None  # filled in by _fill_defaults
        return self.artifact_dir

    @property
    def models(self) -> list[str]:
        """The model allowlist: the built-in toy models, then the configured names."""
        names = list(BUILTIN_MODELS)
        names += [name for name in self.model_allowlist if name not in names]
        return names

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_migrate_at_startup(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
