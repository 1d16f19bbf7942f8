"""Service settings: one pydantic-settings class, environment prefix ``GRAIT_``.

``get_settings()`` is cached; tests build ``Settings(...)`` directly and pass it to
``create_app`` (or clear the cache with ``get_settings.cache_clear()``).
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from grait_engine.pipeline.runtime import RuntimeConfig, RuntimeConfigError

# Models every deployment serves: the toy knowledge world of grait_engine.toyworld.
BUILTIN_MODELS: tuple[str, ...] = ("toyworld/small", "toyworld/tiny")
MB = 1024 * 1024
DEVICE_PATTERN = re.compile(r"auto|cpu|cuda(:\d+)?")
# Optional integers: an empty variable (GRAIT_BATCH_SIZE=) means unset, as None does.
OPTIONAL_INTS = ("torch_threads", "batch_size", "memory_budget_mb")


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
    # Where a job's stages run: auto (cuda when the worker has a GPU, else cpu), cpu, cuda
    # or cuda:N (one worker per GPU: GRAIT_DEVICE=cuda:1 grait worker).
    device: str = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # Torch threads (and OMP/MKL threads) of a job's child process; None: every core this
    # process may run on (see ``threads``).
    torch_threads: int | None = Field(default=None, ge=1)
    # The worker's defaults for a job's ``runtime`` settings it leaves unset (None: the
    # engine's automatic choice; see grait_engine.pipeline.runtime).
    batch_size: int | None = None
    memory_budget_mb: int | None = None
    # --- Job limits (issue 16, part B; see app/jobs/limits.py) ---
    # Caps on a job's count-like settings: a larger value is refused with 422 naming it.
    # hyperparameters.epochs, features.warmup_epochs, features.checkpoints
    max_epochs: int = Field(default=100, ge=1)
    # hyperparameters.max_steps, checkpoint_every, method.reweight_every
    max_steps: int = Field(default=1_000_000, ge=1)
    max_lora_r: int = Field(default=512, ge=1)  # hyperparameters.lora_r, features.lora_r
    # hyperparameters.batch_size, features.warmup_batch_size, runtime.batch_size
    max_batch_size: int = Field(default=1024, ge=1)
    max_grad_accum: int = Field(default=1024, ge=1)  # hyperparameters.grad_accum
    max_keep_checkpoints: int = Field(default=100, ge=1)  # hyperparameters.keep_checkpoints
    max_probe_samples: int = Field(default=100, ge=1)  # probe.n_samples
    max_new_tokens: int = Field(default=1024, ge=1)  # probe.max_new_tokens
    max_shots: int = Field(default=32, ge=0)  # probe.choice_shots, probe.open_shots
    # method.n_ik, method.n_idk, features.warmup_max_items, features.warmup_fallback_items
    max_items: int = Field(default=1_000_000, ge=1)
    max_features_dim: int = Field(default=65536, ge=1)  # features.dim
    # Queued plus running jobs of one tenant: a create or retry past it is refused with 429.
    max_active_jobs_per_tenant: int = Field(default=20, ge=1)
    # Wall-clock seconds one run of a job may take; then it fails with error code timeout.
    job_timeout_seconds: float = Field(default=24 * 3600.0, gt=0)
    # --- HTTP edge (issue 16, part A; see app/edge.py) ---
    # Largest non-upload request body (JSON, forms): more is refused with 413 while streaming.
    max_body_bytes: int = Field(default=1 * MB, gt=0)
    # Seconds a client has to send a whole non-upload body, and a whole upload: then 408.
    body_timeout_seconds: float = Field(default=30.0, gt=0)
    upload_timeout_seconds: float = Field(default=900.0, gt=0)
    # Request slots (of max_concurrent_requests) one tenant may hold at once, so one tenant
    # cannot take every slot; capped at max_concurrent_requests.
    max_concurrent_requests_per_tenant: int = Field(default=6, ge=1)
    # Open event streams (SSE) per tenant: 429 past it.
    max_event_streams_per_tenant: int = Field(default=20, ge=1)
    # Signs /ui login cookies; empty: a random one per process (logins end at restart; set
    # it when several processes serve the UI).
    ui_session_key: SecretStr = SecretStr("")
    # How long a /ui login lasts.
    ui_session_seconds: float = Field(default=8 * 3600.0, gt=0)
    # Seconds an API process may reuse a checked key (key -> tenant) without asking the
    # database; a revoked key is refused everywhere within this time (0: always ask).
    auth_cache_seconds: float = Field(default=5.0, ge=0)
    # --- Webhooks (see app/webhooks) ---
    # Hosts a webhook URL may name (exact hostnames or IP literals, case-insensitive), comma-
    # separated or a JSON list; anything else is refused with 422 and never contacted, so
    # the service cannot be used to reach internal networks. Default: loopback only.
    webhook_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "localhost", "::1"]
    )
    max_webhooks_per_tenant: int = Field(default=10, ge=1, le=1000)
    # Run the delivery loop in this API process (several processes may: claims skip rows
    # another process holds).
    webhook_dispatcher: bool = True
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # A delivery is tried at most this often; after attempt n it waits
    # min(backoff * 2^(n-1), backoff_max) seconds (plus up to 10% jitter).
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    webhook_backoff_seconds: float = Field(default=5.0, gt=0)
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not DEVICE_PATTERN.fullmatch(value):
            raise ValueError(f"must be auto, cpu, cuda or cuda:N (N a GPU index), not {value!r}")
        return value

    @field_validator(*OPTIONAL_INTS, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("batch_size", "memory_budget_mb")
    @classmethod
    def _check_runtime_default(cls, value: int | None, info: ValidationInfo) -> int | None:
        # The engine's own bounds, so a worker default is valid wherever a job's value is.
        try:
            if info.field_name == "batch_size":
                RuntimeConfig(batch_size=value)
            else:
                RuntimeConfig(memory_budget_mb=value)
        except RuntimeConfigError as error:
            raise ValueError(error.message.removesuffix(" or null")) from None
        return value

    @field_validator("model_allowlist", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [name.strip() for name in text.split(",") if name.strip()]
        return value

    @field_validator("webhook_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
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
            # Unset is an empty variable, so a value in the runner's own environment is not
            # inherited in its place.
            "TORCH_THREADS": _or_empty(self.torch_threads),
            "BATCH_SIZE": _or_empty(self.batch_size),
            "MEMORY_BUDGET_MB": _or_empty(self.memory_budget_mb),
        }
        return {f"GRAIT_{name}": str(value) for name, value in values.items()}

    @property
    def threads(self) -> int:
        """Torch threads of a job's process: ``torch_threads``, else every core this process
        may run on (its CPU affinity, which a container's cpuset limits)."""
        if self.torch_threads is not None:
            return self.torch_threads
        if hasattr(os, "sched_getaffinity"):
            return max(1, len(os.sched_getaffinity(0)))
        return os.cpu_count() or 1

    @property
    def cuda_index(self) -> int | None:
        """N of ``device = cuda:N``; None for auto, cpu and cuda (the current GPU)."""
        _, _, index = self.device.partition(":")
        return int(index) if index else None

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


def _or_empty(value: int | None) -> str:
    return "" if value is None else str(value)


def settings_problems(error: ValidationError) -> str:
    """A settings error as one ``GRAIT_<NAME>: message`` line per bad variable (for the
    command line: ``grait serve`` and ``grait worker`` refuse to start with these)."""
    lines = []
    for problem in error.errors():
        name = "_".join(str(part) for part in problem["loc"]).upper() or "SETTINGS"
        message = str(problem["msg"]).removeprefix("Value error, ")
        lines.append(f"GRAIT_{name}: {message}")
    return "\n".join(lines)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
