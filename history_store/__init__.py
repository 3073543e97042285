"""history_store: full conversation history for the OpenAI Agents SDK, in SQL.

Chat Completions backends keep no state on the server; history_store keeps every turn in
SQLite or PostgreSQL and hands it back through the SDK's ``Session`` protocol.
"""

from .errors import (
    ConfigurationError,
    CopyConflictError,
    CopyVerificationError,
    DatabaseBusyError,
    DatabaseNotFoundError,
    DatabasePermissionError,
    DatabaseUnavailableError,
    HistoryStoreError,
    ImportConflictError,
    ImportFormatError,
    InvalidArgumentError,
    InvalidItemError,
    InvalidSessionIdError,
    OutputExistsError,
    QueryTimeoutError,
    ReadOnlyQueryError,
    SchemaOutOfDateError,
    ServerManagedStateError,
    SessionExistsError,
    SessionNotFoundError,
    StorageFullError,
    StoreClosedError,
    UnsafeRoleError,
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
    "ImportConflictError",
    "OutputExistsError",
    "DatabasePermissionError",
    "StorageFullError",
    "UnsafeRoleError",
    "QueryTimeoutError",
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

# Each public name reports the package as its home (as httpx does): help(), reprs and
# tracebacks show ``history_store.HistoryStore``, the path users import, not the module the
# code happens to live in. tests/test_layout.py pins this.
for _name in __all__:
    if not _name.startswith("__"):
        setattr(globals()[_name], "__module__", "history_store")  # noqa: B010
del _name
