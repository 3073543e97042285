"""``history_store.Runner``: ``agents.Runner`` that keeps Chat Completions history for you.

On a Chat Completions backend the SDK cannot use ``previous_response_id`` or
``conversation_id``; history has to travel through a session. This runner:

* refuses server-state parameters before anything happens when any agent of the run is on
  Chat Completions (:func:`history_store.guard.check_server_state`);
* attaches ``store.session(id)`` when the starting agent is on Chat Completions and no
  ``session`` was given, and says which on the result (:func:`session_used`);
* leaves out of the model input stored items Chat Completions cannot take (kept in the store);
* stores a retried input once: after a failed model call the SDK has already stored the input,
  and running the same input again reuses it (``chat_history.is_retry_of_unanswered_input``).

Everything else is ``agents.Runner``: same arguments, same results, same errors.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, TypeVar

from agents import Agent, RunConfig, RunHooks, RunResult, RunResultStreaming
from agents.items import TResponseInputItem
from agents.memory import Session
from agents.run import DEFAULT_MAX_TURNS
from agents.run_config import _coerce_run_config
from agents.run_error_handlers import RunErrorHandlers
from agents.run_state import RunState

from .._engine import resolve_url
from ..store import HistoryStore
from ._sdk import original_runner_method
from .chat_history import chat_history_callback
from .guard import check_server_state, server_state_parameters
from .models import resolve_backend

__all__ = ["Runner", "default_store", "session_used", "SESSION_ATTRIBUTE"]

TContext = TypeVar("TContext")
_R = TypeVar("_R")

SESSION_ATTRIBUTE = "history_session"
"""Name of the attribute set on every result: the session the run used, or ``None``."""

_default_stores: dict[str, HistoryStore] = {}
# True inside a run started through history_store: a run started from within it (an agent used
# as a tool calls agents.Runner) is a sub-conversation and must not get the outer run's session.
_in_run = contextvars.ContextVar("history_store_in_run", default=False)
_default_stores_lock = threading.Lock()


def default_store(url: str | None = None) -> HistoryStore:
    """The store the runner uses when given none: one per database URL, per process.

    ``url`` defaults to ``$HISTORY_STORE_URL``, else ``sqlite+aiosqlite:///./history.db``. A
    store that was closed is replaced by a new one on the next call.
    """
    key = resolve_url(url).render_as_string(hide_password=False)
    with _default_stores_lock:
        store = _default_stores.get(key)
        if store is None or store.closed:
            store = HistoryStore(key)
            _default_stores[key] = store
        return store


def session_used(result: RunResult | RunResultStreaming) -> Session | None:
    """The session a ``history_store`` run read and wrote (attached or passed), or ``None``."""
    session: Session | None = getattr(result, SESSION_ATTRIBUTE, None)
    return session


@dataclass
class RunCall:
    """One run's arguments, as ``agents.Runner`` takes them."""

    starting_agent: Agent[Any]
    input: str | list[TResponseInputItem] | RunState[Any]
    context: Any = None
    max_turns: int | None = DEFAULT_MAX_TURNS
    hooks: RunHooks[Any] | None = None
    run_config: RunConfig | dict[str, Any] | None = None
    error_handlers: RunErrorHandlers[Any] | None = None
    previous_response_id: str | None = None
    auto_previous_response_id: bool = False
    conversation_id: str | None = None
    session: Session | None = None

    def sdk_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``agents.Runner`` (everything but agent and input)."""
        values = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        del values["starting_agent"], values["input"]
        return values


def _config_for_resolution(run_config: RunConfig | dict[str, Any] | None) -> RunConfig:
    # The SDK builds its own RunConfig (and MultiProvider) from None or a dict; one built the
    # same way here resolves models to the same classes, and only ever resolves them.
    return RunConfig() if run_config is None else _coerce_run_config(run_config)


def _with_chat_filter(
    run_config: RunConfig | dict[str, Any] | None, resolved: RunConfig, session_id: str
) -> RunConfig | dict[str, Any]:
    callback = chat_history_callback(session_id, resolved.session_input_callback)
    if isinstance(run_config, RunConfig):
        return dataclasses.replace(run_config, session_input_callback=callback)
    # Stay a dict so the SDK still creates, and closes, the model provider it owns.
    return {**(run_config or {}), "session_input_callback": callback}


def prepare(
    call: RunCall,
    *,
    store: HistoryStore | None,
    session_id: str | None,
    auto_attach: bool = True,
) -> RunCall:
    """Check ``call`` and return it as the SDK should run it.

    Raises :class:`ServerManagedStateError` (from :func:`check_server_state`) before any
    model, session, guardrail or tool is touched. Otherwise, when the run's agent is on Chat
    Completions and ``call.session`` is ``None``, attaches ``store.session(id)`` (``id``:
    ``session_id``, else ``run_config.group_id``, else the store's default) unless
    ``auto_attach`` is False; on any backend, an explicit ``session_id`` asks for a session.
    With a session on Chat Completions, history the model cannot take is filtered on read.
    """
    resolved = _config_for_resolution(call.run_config)
    check_server_state(
        call.starting_agent,
        call.input,
        resolved,
        previous_response_id=call.previous_response_id,
        conversation_id=call.conversation_id,
        auto_previous_response_id=call.auto_previous_response_id,
    )
    if server_state_parameters(
        call.input,
        previous_response_id=call.previous_response_id,
        conversation_id=call.conversation_id,
        auto_previous_response_id=call.auto_previous_response_id,
    ):
        return call  # a Responses run with server state: nothing to attach
    agent = call.input._current_agent if isinstance(call.input, RunState) else None
    agent = agent if isinstance(agent, Agent) else call.starting_agent
    chat = resolve_backend(agent, resolved).chat_completions
    session = call.session
    if session is None and (session_id is not None or (chat and auto_attach)):
        chosen = store if store is not None else default_store()
        session = chosen.session(session_id if session_id is not None else resolved.group_id)
    if session is None:
        return call
    run_config = call.run_config
    if chat:
        run_config = _with_chat_filter(run_config, resolved, session.session_id)
    return dataclasses.replace(call, session=session, run_config=run_config)


def mark(result: _R, session: Session | None) -> _R:
    """Record on ``result`` which session the run used (see :func:`session_used`)."""
    setattr(result, SESSION_ATTRIBUTE, session)
    return result


def inside_run() -> bool:
    """True while a run started through history_store is running in this context."""
    return _in_run.get()


def invoke(name: str, call: RunCall) -> Any:
    """Call the SDK's ``agents.Runner.<name>`` with ``call``, marked as inside a run.

    Returns what it returns (a coroutine for ``run``); the mark covers the synchronous part,
    where ``run_sync`` and ``run_streamed`` create the task that copies this context.
    """
    token = _in_run.set(True)
    try:
        return original_runner_method(name)(call.starting_agent, call.input, **call.sdk_kwargs())
    finally:
        _in_run.reset(token)


async def invoke_run(call: RunCall) -> RunResult:
    """``invoke("run", call)`` awaited, marked as inside a run until it returns."""
    token = _in_run.set(True)
    try:
        result: RunResult = await invoke("run", call)
        return result
    finally:
        _in_run.reset(token)


class Runner:
    """``agents.Runner`` with auto-attached history and the strict server-state guard.

    ``run``, ``run_sync`` and ``run_streamed`` take exactly the arguments of
    ``agents.Runner``'s, plus two keywords:

    * ``session_id``: the session to attach; default ``run_config.group_id``, else the store's
      default id (``"default"``). Passing it attaches a session on any backend.
    * ``store``: the :class:`HistoryStore` to attach from; default :func:`default_store`.

    With a Chat Completions starting agent and no ``session``, ``store.session(id)`` is
    attached; with a Responses agent nothing is, unless ``session_id`` is given.
    ``previous_response_id``, ``conversation_id`` and ``auto_previous_response_id=True`` raise
    :class:`ServerManagedStateError` (also an ``agents.exceptions.UserError``) when any agent
    reachable from the starting one runs on Chat Completions; the error comes before any
    request, session access, guardrail or tool, and from ``run_streamed`` itself. The result
    carries the session used: :func:`session_used`.
    """

    @classmethod
    async def run(
        cls,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        *,
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        error_handlers: RunErrorHandlers[TContext] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
        session_id: str | None = None,
        store: HistoryStore | None = None,
    ) -> RunResult:
        """Run like ``agents.Runner.run``; see the class docstring for what is added."""
        call = RunCall(
            starting_agent, input, context, max_turns, hooks, run_config, error_handlers,
            previous_response_id, auto_previous_response_id, conversation_id, session,
        )  # fmt: skip
        call = prepare(call, store=store, session_id=session_id)
        return mark(await invoke_run(call), call.session)

    @classmethod
    def run_sync(
        cls,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        *,
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        error_handlers: RunErrorHandlers[TContext] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
        session_id: str | None = None,
        store: HistoryStore | None = None,
    ) -> RunResult:
        """Run like ``agents.Runner.run_sync``; see the class docstring for what is added."""
        call = RunCall(
            starting_agent, input, context, max_turns, hooks, run_config, error_handlers,
            previous_response_id, auto_previous_response_id, conversation_id, session,
        )  # fmt: skip
        call = prepare(call, store=store, session_id=session_id)
        result: RunResult = invoke("run_sync", call)
        return mark(result, call.session)

    @classmethod
    def run_streamed(
        cls,
        starting_agent: Agent[TContext],
        input: str | list[TResponseInputItem] | RunState[TContext],
        context: TContext | None = None,
        max_turns: int | None = DEFAULT_MAX_TURNS,
        hooks: RunHooks[TContext] | None = None,
        run_config: RunConfig | dict[str, Any] | None = None,
        previous_response_id: str | None = None,
        auto_previous_response_id: bool = False,
        conversation_id: str | None = None,
        session: Session | None = None,
        *,
        error_handlers: RunErrorHandlers[TContext] | None = None,
        session_id: str | None = None,
        store: HistoryStore | None = None,
    ) -> RunResultStreaming:
        """Run like ``agents.Runner.run_streamed``; refusals are raised from this call."""
        call = RunCall(
            starting_agent, input, context, max_turns, hooks, run_config, error_handlers,
            previous_response_id, auto_previous_response_id, conversation_id, session,
        )  # fmt: skip
        call = prepare(call, store=store, session_id=session_id)
        result: RunResultStreaming = invoke("run_streamed", call)
        return mark(result, call.session)
