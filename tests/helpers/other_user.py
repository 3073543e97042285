"""A second, unprivileged user for tests of what another uid's commands leave behind.

The tests run as root in CI; this makes a throw-away system user (``useradd``) the first
time it is asked for and removes it when the test session ends.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Callable

import pytest

NAME = "hs_issue15_other"


def ensure() -> pwd.struct_passwd:
    """The second user, created if missing; skips the test unless we are root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user and run commands as it")
    try:
        return pwd.getpwnam(NAME)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", NAME],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(NAME)


def remove() -> None:
    try:
        pwd.getpwnam(NAME)
    except KeyError:
        return
    subprocess.run(["userdel", NAME], check=False, capture_output=True)


def as_user(user: pwd.struct_passwd) -> Callable[[], None]:
    """A ``preexec_fn`` that drops to ``user`` (group first, then uid)."""

    def drop() -> None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return drop
