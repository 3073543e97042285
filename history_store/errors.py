"""The exceptions history_store raises.

Every error derives from :class:`HistoryStoreError`, so ``except HistoryStoreError`` catches
anything this library raises on purpose. Each message says what went wrong and what to do.
Some also derive from the built-in or SDK exception a caller would already catch::

    HistoryStoreError
    ├── ConfigurationError                 a URL, option or setting is not usable
    ├── SchemaOutOfDateError               the schema is not at the expected revision
    ├── InvalidArgumentError (ValueError)  an argument out of range or of the wrong kind
    │   ├── InvalidItemError               an item that cannot be stored as JSON
    │   └── InvalidSessionIdError          an id no database can store
    ├── SessionNotFoundError (LookupError)
    ├── DatabaseNotFoundError (FileNotFoundError)
    ├── OutputExistsError (FileExistsError)  an export's target file is there already
    ├── ReadOnlyQueryError                 `sql` was given a write, or invalid SQL
    │   ├── UnsafeRoleError                `sql` connected as a role that can write
    │   └── QueryTimeoutError (TimeoutError)  `sql` ran past its timeout (cancelled)
    ├── StoreClosedError (RuntimeError)    a closed store or its sessions used
    ├── DatabaseUnavailableError (ConnectionError)
    ├── DatabasePermissionError (PermissionError)
    │                                      the file, its folder or its file system refuses us
    ├── StorageFullError                   the disk (or quota) is full; nothing was written
    ├── DatabaseBusyError                  locked beyond the retry budget
    ├── SessionExistsError                 import into a session that is there already
    ├── CopyConflictError                  the destination's session is not the source's
    ├── CopyVerificationError              counts or checksums differ after a copy
    ├── ImportConflictError                the file's session is not the stored one's
    ├── ImportFormatError (ValueError)     an export file this version cannot read
    ├── ContextBudgetExceededError         a request's own input exceeds its token budget
    └── ServerManagedStateError (agents.exceptions.UserError)
                                           server-state ids for a Chat Completions model
"""

from __future__ import annotations

from agents.exceptions import UserError

__all__ = [
    "HistoryStoreError",
    "ConfigurationError",
    "SchemaOutOfDateError",
    "InvalidArgumentError",
    "InvalidItemError",
    "InvalidSessionIdError",
    "SessionNotFoundError",
    "DatabaseNotFoundError",
    "ReadOnlyQueryError",
    "StoreClosedError",
    "DatabaseBusyError",
    "DatabaseUnavailableError",
    "ServerManagedStateError",
    "ImportFormatError",
    "SessionExistsError",
    "CopyConflictError",
    "CopyVerificationError",
    "OutputExistsError",
    "UnsafeRoleError",
    "QueryTimeoutError",
    "DatabasePermissionError",
    "StorageFullError",
    "ContextBudgetExceededError",
    "ImportConflictError",
]


class HistoryStoreError(Exception):
    """Base class of every error raised by history_store."""


class ConfigurationError(HistoryStoreError):
    """A URL, option or setting is not usable (unknown driver, bad ``migrate`` value, ...)."""


class SchemaOutOfDateError(HistoryStoreError):
    """The database schema is not at the revision this version of history_store expects.

    Attributes:
        current: the revision the database is at (``None`` for an empty database).
        expected: the revision the code expects (the head of the bundled migrations).
        command: the exact shell command that brings the database to ``expected``.
    """

    def __init__(self, message: str, *, current: str | None, expected: str, command: str):
        super().__init__(message)
        self.current = current
        self.expected = expected
        self.command = command


class InvalidArgumentError(HistoryStoreError, ValueError):
    """An argument is out of range or of the wrong kind (a negative ``limit``, ...)."""


class InvalidItemError(InvalidArgumentError):
    """An item cannot be stored as JSON (not a dict, not serializable, NaN, ...).

    Nothing of the batch it came in is stored.
    """


class InvalidSessionIdError(InvalidArgumentError):
    """A session id is empty, too long, or holds a character databases cannot store (NUL)."""


class SessionNotFoundError(HistoryStoreError, LookupError):
    """The named session does not exist in the database."""


class DatabaseNotFoundError(HistoryStoreError, FileNotFoundError):
    """A read-only operation named an SQLite file that does not exist (it is never created)."""


class ReadOnlyQueryError(HistoryStoreError):
    """A read-only SQL entry point was given a statement that writes, or invalid SQL."""


class OutputExistsError(HistoryStoreError, FileExistsError):
    """The file an export was asked to write exists; it was left as it was (pass
    ``force=True`` / ``--force`` to replace it)."""


class UnsafeRoleError(ReadOnlyQueryError):
    """``sql`` was connected as a PostgreSQL superuser or a role that can change the history
    tables. A read-only transaction does not stop such a role (``dblink_exec``, replication
    slots), so the query was not run. Connect as a role made by ``history-store db
    create-reader``, or pass ``unsafe_role=True`` / ``--unsafe-role``."""


class QueryTimeoutError(ReadOnlyQueryError, TimeoutError):
    """``sql`` ran longer than its timeout and was cancelled on the database."""


class StoreClosedError(HistoryStoreError, RuntimeError):
    """The store (or a session of it) was used after ``close()``."""


class DatabaseUnavailableError(HistoryStoreError, ConnectionError):
    """The database could not be reached or opened (server down, wrong port, user, password
    or database name). The message names the URL with its password hidden."""


class DatabasePermissionError(HistoryStoreError, PermissionError):
    """The database file, its folder or its file system does not let this process do what
    it asked (a read-only file or mount, another user's file). The message names the file
    and what to change."""


class StorageFullError(HistoryStoreError):
    """The disk (or the user's quota, or the server's) is full. The transaction was rolled
    back: what was stored before is intact, the failed write stored nothing."""


class DatabaseBusyError(HistoryStoreError):
    """The database stayed locked by other writers beyond the retry budget."""


class SessionExistsError(HistoryStoreError):
    """A session being imported already exists at the destination (``on_existing="error"``).

    Nothing of that session was written."""


class CopyConflictError(HistoryStoreError):
    """The destination holds a session of the same id whose items differ from the source's
    (not a prefix of them). Nothing of that session was changed."""


class CopyVerificationError(HistoryStoreError):
    """After copying, a session's destination count or checksum differs from the source's
    (the source changed during the copy, or a writer touched the destination)."""


class ImportConflictError(HistoryStoreError):
    """A session in the export file already exists with a history that is not a prefix of
    the file's (it was cleared and restarted since the backup, say). Nothing of that session
    was changed; choose ``on_conflict="skip"`` or ``"replace"``."""


class ImportFormatError(HistoryStoreError, ValueError):
    """An export file is not in a format this version can read."""


class ContextBudgetExceededError(HistoryStoreError):
    """What a request must carry (its instructions, tool schemas, new input and the run's own
    items) exceeds the token budget even with no history; raised before the request is sent.

    ``needed`` is the calibrated count of that part, ``limit`` the budget's
    ``max_input_tokens - reserve_output_tokens``.
    """

    def __init__(self, message: str, *, needed: int, limit: int) -> None:
        super().__init__(message)
        self.needed = needed
        self.limit = limit


class ServerManagedStateError(HistoryStoreError, UserError):
    """Server-managed conversation state was requested for a Chat Completions backend.

    Chat Completions keeps no state on the server, so ``previous_response_id``,
    ``conversation_id`` and ``auto_previous_response_id`` would be dropped and the model would
    see only the new input. Pass history through a session instead, or use a Responses model.
    """

    def __init__(self, message: str) -> None:
        # UserError's constructor sets ``message`` and the SDK's ``run_data``.
        UserError.__init__(self, message)
