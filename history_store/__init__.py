"""history_store: full conversation history for the OpenAI Agents SDK, in SQL.

Chat Completions backends keep no state on the server; history_store keeps every turn in
SQLite or PostgreSQL and hands it back through the SDK's ``Session`` protocol.
"""

import dataclasses as _dataclasses
import typing as _typing

from ._window import Window
from .backends.base import Summary
from .budget.context import ContextBudget
from .budget.tokens import TokenCounter
from .errors import (
    ConfigurationError,
    ContextBudgetExceededError,
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
from .runner._prepare import conversation
from .runner.guard import StrictModel, StrictModelProvider, strict_model
from .runner.install import install, installed, uninstall
from .runner.models import declare_chat_completions, is_chat_completions
from .runner.run import Runner, default_store, session_used
from .runner.summarizer import Summarizer
from .session import HistorySession
from .store import HistoryStore
from .tools.chat import ChatSummary, chat
from .tools.context import WindowItem, WindowView, compact, window
from .tools.copy import CopyReport, copy_database
from .tools.inspect import (
    ItemRow,
    SessionInfo,
    SessionPage,
    Stats,
    TurnInfo,
    sessions,
    show,
    stats,
    turns,
)
from .tools.maintenance import PruneResult, delete, prune
from .tools.metadata import meta
from .tools.sdk_export import SdkExportReport, export_to_sdk
from .tools.sdk_import import SdkImportReport, SdkSessionReport, migrate_from_sdk
from .tools.search import SearchHit, search
from .tools.sql import QueryResult, sql
from .tools.transfer import TransferSummary, export, import_

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
    "ContextBudgetExceededError",
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
    "declare_chat_completions",
    "conversation",
    "ContextBudget",
    "Summarizer",
    "TokenCounter",
    "sessions",
    "show",
    "search",
    "sql",
    "stats",
    "turns",
    "export",
    "import_",
    "delete",
    "prune",
    "meta",
    "chat",
    "migrate_from_sdk",
    "export_to_sdk",
    "copy_database",
    "window",
    "compact",
    # What those functions return.
    "SessionPage",
    "SessionInfo",
    "ItemRow",
    "TurnInfo",
    "SearchHit",
    "QueryResult",
    "Stats",
    "TransferSummary",
    "PruneResult",
    "ChatSummary",
    "SdkImportReport",
    "SdkSessionReport",
    "SdkExportReport",
    "CopyReport",
    "Summary",
    "Window",
    "WindowView",
    "WindowItem",
    "__version__",
]

# Each public name reports the package as its home (as httpx does): help(), reprs and
# tracebacks show ``history_store.HistoryStore``, the path users import, not the module the
# code happens to live in. tests/test_layout.py pins this.
# A dataclass's annotations are strings (``from __future__ import annotations``), which
# typing.get_type_hints evaluates in the namespace ``__module__`` names: resolved first, while
# that is still the defining module, they keep working.
for _name in __all__:
    if not _name.startswith("__"):
        if _dataclasses.is_dataclass(globals()[_name]):
            globals()[_name].__annotations__ = _typing.get_type_hints(globals()[_name])
        setattr(globals()[_name], "__module__", "history_store")  # noqa: B010
del _name
