"""PostgreSQL roles for reading history: ``history-store db create-reader`` and the check
``sql`` makes before it runs anything.

A ``READ ONLY`` transaction stops plain writes, not what a privileged role can do around it:
a superuser writes through ``dblink_exec`` (another session, outside the transaction) and
creates replication slots that outlive the rollback. So ``sql`` runs only as a role that
cannot write the history tables and is neither a superuser nor a replication role; this
module makes such a role, with ``SELECT`` on history_store's tables and views and nothing
else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection

from .. import tables
from .._engine import redact
from ..errors import ConfigurationError, InvalidArgumentError, UnsafeRoleError
from ._open import Database, database_url, foreign

__all__ = ["ReaderRole", "READABLE", "create_reader", "refuse_unsafe_role"]

READABLE = (
    *sorted(tables.metadata.tables),
    *tables.VIEWS,
    # Read by every read-only command to check that the schema is at head.
    "alembic_version",
)
"""The tables and views a reader may SELECT: every one of history_store's."""

_WRITES = "INSERT, UPDATE, DELETE, TRUNCATE"
_ROLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,62}$")

_ROLE_FLAGS = text(
    "SELECT rolsuper, rolreplication, "
    "pg_has_role(rolname, 'pg_write_server_files', 'USAGE') "
    "OR pg_has_role(rolname, 'pg_execute_server_program', 'USAGE') AS server_files "
    "FROM pg_roles WHERE rolname = :role"
)
_WRITABLE = text(
    "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relname = ANY(:names) "
    "AND has_table_privilege(:role, c.oid, :writes) ORDER BY c.relname"
)
_ROLE_EXISTS = text("SELECT 1 FROM pg_roles WHERE rolname = :role")
# Identifiers and literals are quoted by the server (format's %I and %L), never in Python.
_CREATE_ROLE = text(
    "SELECT format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
    "NOBYPASSRLS', CAST(:role AS text))"
)
_SET_PASSWORD = text("SELECT format('ALTER ROLE %I PASSWORD %L', CAST(:role AS text), :password)")
_READ_ONLY_DEFAULT = text(
    "SELECT format('ALTER ROLE %I SET default_transaction_read_only = on', CAST(:role AS text))"
)
_GRANT_CONNECT = text(
    "SELECT format('GRANT CONNECT ON DATABASE %I TO %I', current_database(), CAST(:role AS text))"
)
_GRANT_USAGE = text(
    "SELECT format('GRANT USAGE ON SCHEMA %I TO %I', current_schema(), CAST(:role AS text))"
)
_GRANT_SELECT = text(
    "SELECT format('GRANT SELECT ON %I.%I TO %I', current_schema(), CAST(:name AS text), "
    "CAST(:role AS text))"
)


@dataclass(frozen=True)
class ReaderRole:
    """What :func:`create_reader` did: the role, whether it was new, what it may read."""

    role: str
    created: bool
    readable: tuple[str, ...]


async def unsafe_role_reason(connection: AsyncConnection, role: str) -> str | None:
    """Why ``role`` must not run ``sql`` (``None``: it may)."""
    flags = (await connection.execute(_ROLE_FLAGS, {"role": role})).one_or_none()
    if flags is not None and flags.rolsuper:
        return "it is a superuser"
    if flags is not None and flags.rolreplication:
        return "it has the REPLICATION attribute"
    if flags is not None and flags.server_files:
        return "it may write server files or run server programs"
    parameters = {"names": list(READABLE), "writes": _WRITES, "role": role}
    writable = list(await connection.scalars(_WRITABLE, parameters))
    if writable:
        return f"it may change {', '.join(writable)}"
    return None


async def refuse_unsafe_role(
    connection: AsyncConnection, url: str, role: str | None = None
) -> None:
    """Raise :class:`UnsafeRoleError` unless ``role`` (default: the connection's) is a safe
    reader."""
    if role is None:
        role = str(await connection.scalar(text("SELECT current_user")))
    reason = await unsafe_role_reason(connection, role)
    if reason is not None:
        raise UnsafeRoleError(
            f"refused: `sql` connected to {url} as the role {role!r}, and {reason}; a "
            "read-only transaction does not stop such a role from writing. Connect as a "
            "reader made by `history-store db create-reader ROLE` (SELECT on the history "
            "tables only), or pass --unsafe-role (unsafe_role=True) if you accept that."
        )


async def _execute_built(connection: AsyncConnection, build: TextClause, **values: str) -> None:
    statement = await connection.scalar(build, values)
    await connection.exec_driver_sql(str(statement))


async def create_reader(
    role: str, url: Database = None, *, password: str | None = None
) -> ReaderRole:
    """Create (or bring up to date) a PostgreSQL login role that can only read history.

    The role gets ``CONNECT`` on the database, ``USAGE`` on the schema and ``SELECT`` on
    :data:`READABLE`, no other privilege and no attribute (not a superuser, no replication,
    ``default_transaction_read_only`` on), and ``password`` if given. Run it as a role that
    may create roles and grant on the tables (their owner, or a superuser). An existing role
    is granted the same; it is refused with :class:`UnsafeRoleError` afterwards if it can
    still write (it was given more before). The schema must be at head (``db upgrade``).
    """
    if not _ROLE_NAME.match(role):
        raise InvalidArgumentError(
            f"role name {role!r} is not a plain identifier (letters, digits, _ and $, at most "
            "63, not starting with a digit)"
        )
    resolved = database_url(url)
    if resolved.get_backend_name() != "postgresql":
        raise ConfigurationError(
            f"create-reader is for PostgreSQL, not {redact(resolved)}. On SQLite, give "
            "readers read permission on the file: read-only commands open it read-only"
        )
    async with foreign(resolved) as engine, engine.begin() as connection:
        created = await connection.scalar(_ROLE_EXISTS, {"role": role}) is None
        if created:
            await _execute_built(connection, _CREATE_ROLE, role=role)
        if password is not None:
            await _execute_built(connection, _SET_PASSWORD, role=role, password=password)
        await _execute_built(connection, _READ_ONLY_DEFAULT, role=role)
        await _execute_built(connection, _GRANT_CONNECT, role=role)
        await _execute_built(connection, _GRANT_USAGE, role=role)
        for name in READABLE:
            await _execute_built(connection, _GRANT_SELECT, role=role, name=name)
        await refuse_unsafe_role(connection, redact(resolved), role)
    return ReaderRole(role=role, created=created, readable=READABLE)
