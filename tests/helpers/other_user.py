"""A second, unprivileged user for tests of what another uid's commands leave behind.

The tests run as root in CI; this makes a throw-away system user (``useradd``) the first
time it is asked for and removes it when the test session ends.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

NAME = "hs_issue15_other"


def ensure(name: str = NAME) -> pwd.struct_passwd:
    """The user ``name``, created if missing; skips the test unless we are root."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second user and run commands as it")
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def remove(name: str = NAME) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    subprocess.run(["userdel", name], check=False, capture_output=True)


def as_user(user: pwd.struct_passwd) -> Callable[[], None]:
    """A ``preexec_fn`` that drops to ``user`` (group first, then uid)."""

    def drop() -> None:
        os.setgroups([])
        os.setgid(user.pw_gid)
        os.setuid(user.pw_uid)

    return drop


def _site_packages() -> list[str]:
    import site
    import sysconfig

    return [sysconfig.get_paths()["purelib"], *site.getsitepackages()]


def run_python(
    user: pwd.struct_passwd, code: str, *args: str, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with history_store importable, as ``user``, to its end."""
    process = start_python(user, code, *args, cwd=cwd, stdin=subprocess.DEVNULL)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def start_python(
    user: pwd.struct_passwd, code: str, *args: str, cwd: str | None = None, stdin: int | None = None
) -> subprocess.Popen[str]:
    """Start ``code`` with history_store importable, as ``user`` (pipes for its output).

    The test interpreter may live where ``user`` cannot reach (pyenv under root's 0700
    home); then the system's interpreter of the same minor version runs the same checkout
    and the same installed packages, found through ``PYTHONPATH``.
    """
    root = str(Path(__file__).resolve().parents[2])
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": os.pathsep.join([root, *_site_packages()]),
        "HOME": "/nonexistent",
    }
    interpreter = _usable_interpreter(user.pw_uid, user.pw_gid, tuple(sorted(env.items())))
    if interpreter is None:
        pytest.skip(f"no Python interpreter that {user.pw_name} can run imports history_store")
    return subprocess.Popen(
        [interpreter, "-c", code, *args],
        env=env,
        preexec_fn=as_user(user),
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd or "/",
    )


@functools.cache
def _usable_interpreter(uid: int, gid: int, env: tuple[tuple[str, str], ...]) -> str | None:
    user = pwd.getpwuid(uid)
    for interpreter in _interpreters():
        try:
            probe = subprocess.run(
                [interpreter, "-c", "import history_store, sqlite3"],
                env=dict(env),
                preexec_fn=as_user(user),
                capture_output=True,
                check=False,
            )
        except OSError:  # that user cannot even execute it
            continue
        if probe.returncode == 0:
            return interpreter
    return None


def _interpreters() -> list[str]:
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return [sys.executable, os.path.realpath(sys.executable), f"/usr/bin/{version}"]


@contextlib.contextmanager
def folder(mode: int) -> Iterator[Path]:
    """A new folder of ``mode`` outside pytest's own temporary folders (those are root's,
    0700, so other users could not reach into them), removed after."""
    made = Path(tempfile.mkdtemp(prefix="hs-issue15-"))
    made.chmod(mode)
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)
