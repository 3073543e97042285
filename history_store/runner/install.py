"""``install()`` / ``uninstall()``: give plain ``agents.Runner`` history_store's behaviour.

``install()`` replaces ``agents.Runner.run``, ``run_sync`` and ``run_streamed`` (the class
attributes, so every ``from agents import Runner`` sees it) with versions that guard and
auto-attach exactly like :class:`history_store.Runner`, and keeps the replaced attributes to
put back. Both functions are idempotent and serialized by a lock.
"""

from __future__ import annotations

from typing import Any

from agents.result import RunResult, RunResultStreaming
from agents.run import Runner as SDKRunner

from ..store import HistoryStore
from . import _sdk
from ._prepare import PreparedRun, RunCall
from .run import (
    inside_run,
    prepare_call,
    run_prepared,
    run_streamed_prepared,
    run_sync_prepared,
)

__all__ = ["install", "uninstall", "installed"]
# run_streamed takes these positionally after (starting_agent, input); run and run_sync take
# only keywords.
_STREAMED_POSITIONAL = (
    "context",
    "max_turns",
    "hooks",
    "run_config",
    "previous_response_id",
    "auto_previous_response_id",
    "conversation_id",
    "session",
)

_store: HistoryStore | None = None


def _prepare(starting_agent: Any, input: Any, kwargs: dict[str, Any]) -> PreparedRun:
    store = kwargs.pop("store", None)
    session_id = kwargs.pop("session_id", None)
    call = RunCall(starting_agent, input, **kwargs)
    with _sdk.lock:
        store = store if store is not None else _store
    # A run started inside another (an agent used as a tool) is a separate conversation.
    return prepare_call(call, store=store, session_id=session_id, nested=inside_run())


async def _run(cls: type, /, starting_agent: Any, input: Any, **kwargs: Any) -> RunResult:
    return await run_prepared(_prepare(starting_agent, input, kwargs))


def _run_sync(cls: type, /, starting_agent: Any, input: Any, **kwargs: Any) -> RunResult:
    return run_sync_prepared(_prepare(starting_agent, input, kwargs))


def _run_streamed(
    cls: type, /, starting_agent: Any, input: Any, *args: Any, **kwargs: Any
) -> RunResultStreaming:
    if len(args) > len(_STREAMED_POSITIONAL):
        raise TypeError(f"run_streamed() takes at most {2 + len(_STREAMED_POSITIONAL)} positional")
    for name, value in zip(_STREAMED_POSITIONAL, args, strict=False):
        if name in kwargs:
            raise TypeError(f"run_streamed() got multiple values for argument {name!r}")
        kwargs[name] = value
    return run_streamed_prepared(_prepare(starting_agent, input, kwargs))


_PATCHES: dict[str, Any] = {
    "run": classmethod(_run),
    "run_sync": classmethod(_run_sync),
    "run_streamed": classmethod(_run_streamed),
}


def install(store: HistoryStore | None = None) -> None:
    """Make plain ``agents.Runner`` guard server state and auto-attach history.

    After this, ``agents.Runner.run/run_sync/run_streamed`` behave as
    :class:`history_store.Runner`'s (they also accept ``session_id=`` and ``store=``), taking
    sessions from ``store`` (default: :func:`history_store.default_store`). Runs started from
    inside a run (agents used as tools) are guarded but get no session attached, and a
    refusal of theirs ends the outer run with :class:`ServerManagedStateError` instead of
    becoming a tool error the model reads.

    Calling it again keeps one patch in place and only replaces the store. Undo it with
    :func:`uninstall`.
    """
    global _store
    with _sdk.lock:
        _store = store
        if _sdk.saved is not None:
            return
        _sdk.saved = {name: SDKRunner.__dict__[name] for name in _sdk.RUNNER_METHODS}
        for name in _sdk.RUNNER_METHODS:
            setattr(SDKRunner, name, _PATCHES[name])


def uninstall() -> None:
    """Put back the exact ``agents.Runner`` attributes :func:`install` replaced.

    Does nothing when not installed.
    """
    global _store
    with _sdk.lock:
        if _sdk.saved is None:
            return
        for name, descriptor in _sdk.saved.items():
            setattr(SDKRunner, name, descriptor)
        _sdk.saved = None
        _store = None


def installed() -> bool:
    """True between :func:`install` and :func:`uninstall`."""
    with _sdk.lock:
        return _sdk.saved is not None
