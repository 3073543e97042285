"""The ``agents.Runner`` methods as the SDK defined them, whatever ``install()`` has done.

``install()`` replaces ``agents.Runner.run``, ``run_sync`` and ``run_streamed``; a run
started through history_store must still reach the SDK's own. Both sides keep that state
here, so ``run.py`` (which calls the originals) and ``install.py`` (which replaces them)
never import each other.
"""

from __future__ import annotations

import threading
from typing import Any

from agents.run import Runner as SDKRunner

RUNNER_METHODS = ("run", "run_sync", "run_streamed")

lock = threading.RLock()
"""Serializes ``install()``, ``uninstall()`` and reads of :data:`saved`."""

saved: dict[str, Any] | None = None
"""The replaced class attributes while installed, else ``None``."""


def original_runner_method(name: str) -> Any:
    """``agents.Runner.<name>`` as it was before ``install()`` (or as it is, if not installed)."""
    with lock:
        descriptor = saved[name] if saved is not None else SDKRunner.__dict__[name]
    return descriptor.__get__(None, SDKRunner)
