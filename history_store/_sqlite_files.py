"""An SQLite database as files: where it is, how it is created, and what the file system
says when it refuses us (a full disk, a read-only mount, a file or folder we may not write,
another user's file a reader must not leave files beside)."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError

from .errors import DatabasePermissionError, HistoryStoreError, StorageFullError


def sqlite_path(url: URL) -> Path | None:
    """The file behind an SQLite URL, or ``None`` for an in-memory database."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return Path(database)


def create_sqlite_file(path: Path) -> None:
    """Create an empty database file readable by its owner only (mode 0600).

    SQLite gives the -wal and -shm files the main file's permissions, so history never
    becomes readable by other users of the machine.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def reader_would_lock_out_owner(path: Path) -> bool:
    """Whether opening ``path`` read-only here would create its ``-wal``/``-shm`` files
    owned by this user, which the file's owner then could not write ("attempt to write a
    readonly database", even after a chmod of the database).

    SQLite creates the pair when it is missing (the last connection to close removes it), as
    the user who opens the file; only root's are handed to the file's owner. A reader that
    is another user then opens the file ``immutable``: no locks, no files created. Nothing
    is writing it at that moment (no ``-wal``), and a writer that starts during the read is
    noticed afterwards (:func:`sqlite_file_signature`).
    """
    euid = os.geteuid()
    try:
        owner = path.stat().st_uid
    except OSError:
        return False
    if euid in (0, owner):
        return False
    wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
    if wal.exists() and wal.stat().st_size > 0 and not shm.exists():
        # A writer died with commits still in its WAL: only a normal read sees them.
        return False
    return not (wal.exists() and shm.exists())


def sqlite_file_signature(path: Path) -> tuple[int, int, bool]:
    """What changes when a writer touches an SQLite file: its modification time and size,
    and whether its ``-wal`` exists."""
    status = path.stat()
    return status.st_mtime_ns, status.st_size, Path(f"{path}-wal").exists()


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_PERMISSION_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def sqlite_file_error(url: URL, exc: BaseException) -> HistoryStoreError | None:
    """:class:`StorageFullError` or :class:`DatabasePermissionError` when ``exc`` (a driver,
    SQLAlchemy or OS error) came from the file system under an SQLite database, naming the
    file and what to change; ``None`` for any other error."""
    path = sqlite_path(url)
    if path is None:
        return None
    reason = exc.orig if isinstance(exc, DBAPIError) else exc
    message = str(reason).lower()
    number = reason.errno if isinstance(reason, OSError) else None
    if number in _FULL_ERRNOS or "disk is full" in message:
        return StorageFullError(
            f"{path}: the disk (or quota) is full ({reason}). The write was rolled back: what "
            f"was stored before is intact. Free space on the file system holding {path.parent} "
            "(prune old history there, or move the database), then retry."
        )
    permission = (
        number in _PERMISSION_ERRNOS
        or "readonly database" in message
        or "unable to open database file" in message
    )
    advice = _permission_advice(path) if permission else None
    if advice is None:
        return None
    return DatabasePermissionError(f"cannot write {path} ({reason}): {advice}")


def _permission_advice(path: Path) -> str | None:
    """Why this process may not write the database at ``path``, and what to change;
    ``None`` when the file system shows no reason (the error was something else)."""
    folder = path.parent if str(path.parent) else Path(".")
    try:
        if os.statvfs(folder if folder.exists() else Path(".")).f_flag & os.ST_RDONLY:
            return (
                f"the file system holding {folder} is mounted read-only. Remount it "
                "read-write, or copy the database to a writable place"
            )
    except OSError:
        pass
    user = f"this user (uid {os.geteuid()})"
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if candidate.exists() and not os.access(candidate, os.R_OK | os.W_OK):
            owner = candidate.stat()
            return (
                f"{candidate} (owner uid {owner.st_uid}, mode {stat.S_IMODE(owner.st_mode):04o}) "
                f"is not writable by {user}. Run as its owner, or give {user} read and "
                f"write access to it (chmod/chown)"
            )
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"the folder {folder} is not writable by {user}, and SQLite must create "
            f"{path.name}-wal and {path.name}-shm (or the database itself) there. Make the "
            "folder writable, or move the database"
        )
    return None
