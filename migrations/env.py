"""Alembic environment for history_store.

Used two ways: by ``alembic`` from the repository (``alembic upgrade head``; the URL comes
from ``-x url=...``, else ``$HISTORY_STORE_URL``, else ``./history.db``), and by the package
itself, which passes an open connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

from history_store._engine import make_engine, resolve_url
from history_store.schema import run_with_foreign_keys_off
from history_store.tables import metadata

config = context.config


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=str(resolve_url(context.get_x_argument(as_dictionary=True).get("url"))),
        target_metadata=metadata,
        literal_binds=True,
        render_as_batch=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_migrations_online() -> None:
    url = resolve_url(context.get_x_argument(as_dictionary=True).get("url"))
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_with_foreign_keys_off, _configure_and_run)
    finally:
        await engine.dispose()


given = config.attributes.get("connection")
if given is None and config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)
if given is not None:
    _configure_and_run(given)
elif context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
