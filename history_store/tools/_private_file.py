"""Writing a file that holds history: owner-only, never through a planted link, never torn.

An export may be written as root into a directory other users can write (``/tmp``, a shared
backup folder). A fixed temporary name there (``FILE.partial``) can be planted in advance as
a symlink to any file the writer can reach, and opening it follows the link. So the
temporary file gets a fresh random name, opened ``O_CREAT | O_EXCL | O_NOFOLLOW`` with mode
0600 (an existing name or a link is refused by the kernel, not checked first), written,
flushed to disk, and only then put in place by one atomic rename or link in the same
directory. A target that exists is left alone unless the caller asked to replace it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ..errors import OutputExistsError

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
_ATTEMPTS = 20


def _exclusive_temporary(target: Path) -> tuple[Path, int]:
    """A new file beside ``target`` that nobody else created or linked: its path and fd."""
    for _ in range(_ATTEMPTS):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(8)}.partial")
        try:
            return candidate, os.open(candidate, _CREATE_FLAGS, 0o600)
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a temporary file beside {target}")


def refuse_existing(target: Path, *, replace: bool) -> None:
    """Raise :class:`OutputExistsError` if ``target`` exists (a link included) and the caller
    did not ask to ``replace`` it."""
    if not replace and os.path.lexists(target):
        raise OutputExistsError(
            f"{target} already exists; nothing was written. Pass --force (force=True) to "
            "replace it, or choose another file."
        )


def _link_without_replacing(temporary: Path, target: Path) -> None:
    """Give ``temporary`` the name ``target`` unless a file of that name appeared meanwhile."""
    try:
        os.link(temporary, target, follow_symlinks=False)
    except FileExistsError:
        refuse_existing(target, replace=False)
        raise
    except OSError:
        # A file system without hard links: the check and the rename are two steps there.
        refuse_existing(target, replace=False)
        os.replace(temporary, target)


@contextlib.contextmanager
def private_output(target: str | os.PathLike[str], *, replace: bool) -> Iterator[TextIO]:
    """A text stream whose contents appear at ``target`` (mode 0600) only if the block ends
    without an error; see the module docstring."""
    path = Path(target)
    refuse_existing(path, replace=replace)
    temporary, fd = _exclusive_temporary(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        if replace:
            os.replace(temporary, path)  # replaces a link itself, never what it points to
        else:
            _link_without_replacing(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
