"""history_store: full conversation history for the OpenAI Agents SDK, in SQL.

Chat Completions backends keep no state on the server; history_store keeps every turn in
SQLite or PostgreSQL and hands it back through the SDK's ``Session`` protocol.
"""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    CopyConflictError,
    CopyVerificationError,
    DatabaseBusyError,
    DatabaseNotFoundError,
    DatabaseUnavailableError,
    HistoryStoreError,
    ImportFormatError,
    InvalidArgumentError,
    InvalidItemError,
    InvalidSessionIdError,
    ReadOnlyQueryError,
    SchemaOutOfDateError,
    ServerManagedStateError,
    SessionExistsError,
    SessionNotFoundError,
    StoreClosedError,
)
from .runner.guard import StrictModel, StrictModelProvider, strict_model
from .runner.install import install, installed, uninstall
from .runner.models import is_chat_completions
from .runner.run import Runner, default_store, session_used
from .session import HistorySession
from .store import HistoryStore
from .tools.chat import chat
from .tools.copy import copy_database
from .tools.inspect import search, sessions, show, sql, stats
from .tools.maintenance import delete, prune
from .tools.sdk_export import export_to_sdk
from .tools.sdk_import import migrate_from_sdk
from .tools.transfer import export, import_

__version__ = "0.1.0"

__all__ = [
    "HistoryStore",
    "HistorySession",
    "HistoryStoreError",
    "ConfigurationError",
    "DatabaseBusyError",
    "DatabaseNotFoundError",
    "DatabaseUnavailableError",
    "ImportFormatError",
    "InvalidArgumentError",
    "InvalidItemError",
    "InvalidSessionIdError",
    "ReadOnlyQueryError",
    "SchemaOutOfDateError",
    "ServerManagedStateError",
    "SessionNotFoundError",
    "StoreClosedError",
    "SessionExistsError",
    "CopyConflictError",
    "CopyVerificationError",
    "Runner",
    "default_store",
    "session_used",
    "install",
    "uninstall",
    "installed",
    "strict_model",
    "StrictModel",
    "StrictModelProvider",
    "is_chat_completions",
    "sessions",
    "show",
    "search",
    "sql",
    "stats",
    "export",
    "import_",
    "delete",
    "prune",
    "chat",
    "migrate_from_sdk",
    "export_to_sdk",
    "copy_database",
    "__version__",
]
