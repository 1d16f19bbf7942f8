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
    # Empty: ``{data_dir}/cache`` (content-addressed stage outputs shared by all jobs).
    stage_cache_dir: Path | None = None
    # Empty: ``{data_dir}/toyworld`` (where the built-in toyworld/* models are built).
    toyworld_dir: Path | None = None
    # Job execution (local runner and Celery worker alike).
    lease_seconds: float = Field(default=60.0, gt=0)
    cancel_grace_seconds: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=3, ge=1)
    # Requests inside the app at once (each may hold a database connection); the database
    # pool is sized to match (see app/concurrency.py).
    max_concurrent_requests: int = Field(default=8, ge=1, le=1000)
    # queue=local: run queued jobs in this process's child processes (false: API only).
    local_runner: bool = True
    # "auto": cuda when the worker has a GPU, else cpu.
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"

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
        if self.stage_cache_dir is None:
            self.stage_cache_dir = self.data_dir / "cache"
        if self.toyworld_dir is None:
            self.toyworld_dir = self.data_dir / "toyworld"
        return self

    def child_env(self) -> dict[str, str]:
        """These settings as ``GRAIT_*`` variables, for a child process's ``Settings()``."""
        values = {
            "DATA_DIR": self.data_dir,
            "DATABASE_URL": self.database_url,
            "ARTIFACT_DIR": self.artifact_dir,
            "STAGE_CACHE_DIR": self.stage_cache_dir,
            "TOYWORLD_DIR": self.toyworld_dir,
            "QUEUE": self.queue,
            "BROKER_URL": self.broker_url.get_secret_value(),
            "MODEL_ALLOWLIST": json.dumps(self.model_allowlist),
            "LEASE_SECONDS": self.lease_seconds,
            "CANCEL_GRACE_SECONDS": self.cancel_grace_seconds,
            "MAX_ATTEMPTS": self.max_attempts,
            "DEVICE": self.device,
            "DTYPE": self.dtype,
        }
        return {f"GRAIT_{name}": str(value) for name, value in values.items()}

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
