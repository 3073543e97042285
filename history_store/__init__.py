"""history_store: full conversation history for the OpenAI Agents SDK, in SQL.

Chat Completions backends keep no state on the server; history_store keeps every turn in
SQLite or PostgreSQL and hands it back through the SDK's ``Session`` protocol.
"""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    DatabaseBusyError,
    DatabaseNotFoundError,
    HistoryStoreError,
    ImportFormatError,
    InvalidArgumentError,
    InvalidItemError,
    InvalidSessionIdError,
    ReadOnlyQueryError,
    SchemaOutOfDateError,
    ServerManagedStateError,
    SessionNotFoundError,
    StoreClosedError,
)
from .session import HistorySession
from .store import HistoryStore

__version__ = "0.1.0"

__all__ = [
    "HistoryStore",
    "HistorySession",
    "HistoryStoreError",
    "ConfigurationError",
    "DatabaseBusyError",
    "DatabaseNotFoundError",
    "ImportFormatError",
    "InvalidArgumentError",
    "InvalidItemError",
    "InvalidSessionIdError",
    "ReadOnlyQueryError",
    "SchemaOutOfDateError",
    "ServerManagedStateError",
    "SessionNotFoundError",
    "StoreClosedError",
    "__version__",
]
