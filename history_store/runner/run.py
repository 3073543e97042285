"""``history_store.Runner``: ``agents.Runner`` that keeps Chat Completions history for you.

On a Chat Completions backend the SDK cannot use ``previous_response_id`` or
``conversation_id``; history has to travel through a session. This runner:

* refuses server-state ids before anything happens wherever the SDK would drop them
  (:func:`history_store.runner.guard.check_server_state`);
* attaches a session when an agent the run reaches by handoff is on Chat Completions and no
  ``session`` was given, one of its own unless an id says which (``_prepare``), and says
  which on the result (:func:`session_used`);
* leaves out of every Chat Completions request the items it cannot take (kept stored);
* records how each turn ended, and the usage reported for it, in ``hs_turns``; the items of
  a failed or blocked turn stay stored and are never sent again (``_outcome``).

Everything else is ``agents.Runner``: same arguments, same results, same errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
import warnings
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

from agents import Agent, RunConfig, RunHooks, RunResult, RunResultStreaming
from agents.items import TResponseInputItem
from agents.memory import Session
from agents.run import DEFAULT_MAX_TURNS
from agents.run_error_handlers import RunErrorHandlers
from agents.run_state import RunState
from agents.stream_events import StreamEvent

from .._engine import resolve_url
from ..budget.context import ContextBudget
from ..errors import ServerManagedStateError
from ..store import HistoryStore
from ._prepare import PreparedRun, RunCall, prepare
from ._sdk import original_runner_method

__all__ = ["Runner", "default_store", "session_used", "SESSION_ATTRIBUTE"]

TContext = TypeVar("TContext")
_R = TypeVar("_R")

SESSION_ATTRIBUTE = "history_session"
"""Name of the attribute set on every result: the session the run used, or ``None``."""

_default_stores: dict[str, HistoryStore] = {}
_default_stores_lock = threading.Lock()
# True inside a run started through history_store: a run started from within it (an agent used
# as a tool calls agents.Runner) is a sub-conversation and must not get the outer run's session.
_in_run = contextvars.ContextVar("history_store_in_run", default=False)
# The refusals of the run this context is inside: a nested run's refusal goes there, so the
# outer run raises it instead of the SDK turning it into a tool error the model reads.
_outer_refusals: contextvars.ContextVar[list[ServerManagedStateError] | None] = (
    contextvars.ContextVar("history_store_outer_refusals", default=None)
)


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
    """The session a ``history_store`` run read and wrote (attached or passed), or ``None``.

    For a session attached without an id, ``session_used(result).session_id`` is the id to
    pass as ``session_id=`` to continue that conversation.
    """
    session: Session | None = getattr(result, SESSION_ATTRIBUTE, None)
    return session


def inside_run() -> bool:
    """True while a run started through history_store is running in this context."""
    return _in_run.get()


def prepare_call(
    call: RunCall,
    *,
    store: HistoryStore | None,
    session_id: str | None,
    nested: bool = False,
    budget: ContextBudget | None = None,
) -> PreparedRun:
    """:func:`prepare` with the process's default store. A ``nested`` run (started inside
    another under ``install()``) attaches nothing by itself, and its refusal is handed to the
    run it is nested in."""
    try:
        return prepare(
            call,
            store=store,
            session_id=session_id,
            default_store=default_store,
            auto_attach=not nested,
            budget=budget,
        )
    except ServerManagedStateError as refusal:
        outer = _outer_refusals.get()
        if nested and outer is not None:
            outer.append(refusal)
        raise


@contextlib.contextmanager
def _running(prepared: PreparedRun) -> Iterator[None]:
    """The context the SDK's run starts in; its tasks copy it."""
    in_run = _in_run.set(True)
    refusals = _outer_refusals.set(prepared.refusals)
    try:
        with prepared.outcome.watching():
            yield
    finally:
        _outer_refusals.reset(refusals)
        _in_run.reset(in_run)


def _mark(result: _R, prepared: PreparedRun) -> _R:
    setattr(result, SESSION_ATTRIBUTE, prepared.call.session)
    return result


def _sdk(name: str, prepared: PreparedRun) -> Any:
    call = prepared.call
    return original_runner_method(name)(call.starting_agent, call.input, **call.sdk_kwargs())


async def run_prepared(prepared: PreparedRun) -> RunResult:
    """The SDK's ``Runner.run`` on ``prepared``, its outcome recorded."""
    with _running(prepared):
        try:
            result: RunResult = await _sdk("run", prepared)
        except BaseException as error:
            await prepared.outcome.failed(error)
            raise
    await _finish(prepared, result)
    return _mark(result, prepared)


async def _finish(prepared: PreparedRun, result: Any) -> None:
    if prepared.refusals:
        # A nested run was refused in the run's last step (its tool output was final).
        await prepared.outcome.failed(prepared.refusals[0])
        raise prepared.refusals[0]
    await prepared.outcome.finished(result)


def run_sync_prepared(prepared: PreparedRun) -> RunResult:
    """The SDK's ``Runner.run_sync`` on ``prepared``, its outcome recorded on the same loop."""
    with _running(prepared):
        try:
            result: RunResult = _sdk("run_sync", prepared)
        except BaseException as error:
            _on_run_sync_loop(prepared, prepared.outcome.failed(error))
            raise
    if prepared.refusals:
        _on_run_sync_loop(prepared, prepared.outcome.failed(prepared.refusals[0]))
        raise prepared.refusals[0]
    _on_run_sync_loop(prepared, prepared.outcome.finished(result))
    return _mark(result, prepared)


def _on_run_sync_loop(prepared: PreparedRun, step: Coroutine[Any, Any, None]) -> None:
    """Run ``step`` on the thread's default loop, the one ``run_sync`` ran on and left open
    (the SDK keeps it for loop-bound session helpers)."""
    if not prepared.outcome.active:
        step.close()
        return
    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        loop = policy.get_event_loop()
    if loop.is_closed():
        loop = policy.new_event_loop()
        policy.set_event_loop(loop)
    loop.run_until_complete(step)


def run_streamed_prepared(prepared: PreparedRun) -> RunResultStreaming:
    """The SDK's ``Runner.run_streamed`` on ``prepared``; the outcome is recorded when the
    caller's ``stream_events()`` ends (a stream nobody reads to its end records none)."""
    with _running(prepared):
        result: RunResultStreaming = _sdk("run_streamed", prepared)
    events = result.stream_events

    async def stream_events() -> AsyncIterator[StreamEvent]:
        try:
            async for event in events():
                yield event
        except BaseException as error:
            await prepared.outcome.failed(error)
            raise
        await _finish(prepared, result)

    result.stream_events = stream_events  # type: ignore[method-assign]
    return _mark(result, prepared)


class Runner:
    """``agents.Runner`` with auto-attached history, turn status and the strict guard.

    ``run``, ``run_sync`` and ``run_streamed`` take exactly the arguments of
    ``agents.Runner``'s, plus three keywords:

    * ``session_id``: the session to attach from the store, on any backend. Without it (and
      without ``session``), a run whose agents reach a Chat Completions model by handoff gets
      ``store.session(id)``, ``id`` being ``run_config.group_id``, else the enclosing
      :func:`history_store.conversation`, else a new id of its own: one-shot runs never
      share history. Read the id back with :func:`session_used`.
    * ``store``: the :class:`HistoryStore` to attach from; default :func:`default_store`.
    * ``budget``: a :class:`~history_store.ContextBudget` every request of the run must fit
      (default: the session's). The session sends the newest summary and whole turns that
      fit; before each request the instructions, tool schemas and new input are counted
      too and the oldest turns dropped until it fits, else
      :class:`~history_store.ContextBudgetExceededError` is raised before it is sent.
      With a summarizer, the turns that left the window are summarized after the run.

    ``session`` and ``session_id`` together raise :class:`InvalidArgumentError`.
    ``previous_response_id``, ``conversation_id`` and ``auto_previous_response_id=True``
    raise :class:`ServerManagedStateError` (also an ``agents.exceptions.UserError``) where
    the SDK would drop them on a Chat Completions model: the run's ids for the agents it
    reaches by handoff, the ids given to ``as_tool`` for an agent used as a tool. The error
    comes before any request, session access, guardrail or tool, and from ``run_streamed``
    itself. Each turn's status and usage go to ``hs_turns``; a failed or blocked turn's items
    are never sent again.
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
        budget: ContextBudget | None = None,
    ) -> RunResult:
        """Run like ``agents.Runner.run``; see the class docstring for what is added."""
        call = RunCall(
            starting_agent, input, context, max_turns, hooks, run_config, error_handlers,
            previous_response_id, auto_previous_response_id, conversation_id, session,
        )  # fmt: skip
        prepared = prepare_call(call, store=store, session_id=session_id, budget=budget)
        return await run_prepared(prepared)

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
        budget: ContextBudget | None = None,
    ) -> RunResult:
        """Run like ``agents.Runner.run_sync``; see the class docstring for what is added."""
        call = RunCall(
            starting_agent, input, context, max_turns, hooks, run_config, error_handlers,
            previous_response_id, auto_previous_response_id, conversation_id, session,
        )  # fmt: skip
        prepared = prepare_call(call, store=store, session_id=session_id, budget=budget)
        return run_sync_prepared(prepared)

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
        budget: ContextBudget | None = None,
    ) -> RunResultStreaming:
        """Run like ``agents.Runner.run_streamed``; refusals are raised from this call."""
        call = RunCall(
            starting_agent, input, context, max_turns, hooks, run_config, error_handlers,
            previous_response_id, auto_previous_response_id, conversation_id, session,
        )  # fmt: skip
        prepared = prepare_call(call, store=store, session_id=session_id, budget=budget)
        return run_streamed_prepared(prepared)
