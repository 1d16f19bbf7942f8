"""Alembic environment: URL from ``config.attributes['url']``, ``-x url=``, or the settings.

SQLite runs in batch mode (ALTER TABLE by copy), so the same revisions work on both backends.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context

from app.db.models import Base
from app.db.session import make_engine
from app.settings import get_settings

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    """The URL to migrate: set by code, given on the command line, or from the settings."""
    url = config.attributes.get("url") or context.get_x_argument(as_dictionary=True).get("url")
    return url or get_settings().database_url


def run_offline() -> None:
    url = database_url()
    context.configure(
        url=url,
        target_metadata=Base.metadata,
        literal_binds=True,
        render_as_batch=url.startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    url = database_url()
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
