"""Turning a call to ``Runner.run`` into the call the SDK runs: the guard, the session, the
filters, and the outcome recorder.

Which session a run gets:

1. ``session=``: that one (with ``session_id=`` too: :class:`InvalidArgumentError`);
2. ``session_id=``: ``store.session(session_id)``, on any backend (with server-state ids on
   a Responses agent the SDK then raises its own "Session persistence cannot be combined"
   error, as for any session);
3. otherwise, when an agent the run reaches by handoff runs on Chat Completions and no
   server-state id is given: ``store.session(id)`` with ``id`` from ``run_config.group_id``,
   else the enclosing :func:`conversation` scope, else the store's ``default_session_id``,
   else a new id of its own. Nothing is shared unless an id says so.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from agents import Agent, RunConfig, RunHooks
from agents.items import ItemHelpers, TResponseInputItem
from agents.memory import Session
from agents.run import DEFAULT_MAX_TURNS
from agents.run_config import _coerce_run_config
from agents.run_error_handlers import RunErrorHandlers
from agents.run_state import RunState

from .._items import validate_session_id
from ..budget.context import ContextBudget
from ..errors import InvalidArgumentError, ServerManagedStateError
from ..session import HistorySession
from ..store import HistoryStore
from ._outcome import RunOutcome
from .chat_history import model_input_filter
from .guard import check_server_state, current_agent, server_state_parameters
from .models import handoff_agents, resolve_model

_conversation: ContextVar[str | None] = ContextVar("history_store_conversation", default=None)


@contextlib.contextmanager
def conversation(session_id: str) -> Iterator[str]:
    """Runs inside this block continue the conversation ``session_id``.

    ``with history_store.conversation(id):`` around the code that handles one request (a
    web app's handler, a job) makes every ``history_store.Runner`` run in it that gets no
    ``session_id=`` or ``run_config.group_id`` attach ``store.session(session_id)``. It is a
    context variable: concurrent requests each see their own, tasks started inside inherit
    it, and the previous value comes back when the block ends.
    """
    token = _conversation.set(validate_session_id(session_id))
    try:
        yield session_id
    finally:
        _conversation.reset(token)


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


@dataclass
class PreparedRun:
    """A run ready for the SDK, and what watches it."""

    call: RunCall
    outcome: RunOutcome
    refusals: list[ServerManagedStateError] = field(default_factory=list)
    """Refusals met by runs nested in this one; the model-input filter raises the first."""


def resolution_config(run_config: RunConfig | dict[str, Any] | None) -> RunConfig:
    """A ``RunConfig`` that resolves models as the SDK's own for this run will.

    The SDK builds its own RunConfig (and MultiProvider) from None or a dict; one built the
    same way here resolves models to the same classes, and only ever resolves them.
    """
    return RunConfig() if run_config is None else _coerce_run_config(run_config)


def prepare(
    call: RunCall,
    *,
    store: HistoryStore | None,
    session_id: str | None,
    default_store: Callable[[], HistoryStore],
    auto_attach: bool = True,
    budget: ContextBudget | None = None,
) -> PreparedRun:
    """Check ``call`` and return it as the SDK should run it (see the module docstring).

    Raises :class:`ServerManagedStateError` (from :func:`check_server_state`) or
    :class:`InvalidArgumentError` before any model, session, guardrail or tool is touched.
    ``auto_attach=False`` (a run nested in another under ``install()``) attaches nothing
    unless ``session_id`` is given. ``default_store()`` gives the store when ``store`` is
    ``None``. ``budget`` (else the session's own) fits every request of the run.
    """
    if budget is not None and not isinstance(budget, ContextBudget):
        raise InvalidArgumentError(
            f"budget must be a history_store.ContextBudget, got {type(budget).__name__}"
        )
    if call.session is not None and session_id is not None:
        raise InvalidArgumentError(
            "pass either session= (the session to use) or session_id= (the id of one to "
            "attach from store=), not both"
        )
    resolved = resolution_config(call.run_config)
    check_server_state(
        call.starting_agent,
        call.input,
        resolved,
        previous_response_id=call.previous_response_id,
        conversation_id=call.conversation_id,
        auto_previous_response_id=call.auto_previous_response_id,
    )
    server_state = server_state_parameters(
        call.input,
        previous_response_id=call.previous_response_id,
        conversation_id=call.conversation_id,
        auto_previous_response_id=call.auto_previous_response_id,
    )
    start = current_agent(call.starting_agent, call.input)
    needs_history = any(
        resolve_model(agent, resolved).chat_completions for agent in handoff_agents(start)
    )
    session = call.session
    if session is None and (
        session_id is not None or (auto_attach and needs_history and not server_state)
    ):
        chosen = store if store is not None else default_store()
        session = chosen.session(
            session_id if session_id is not None else resolved.group_id or _conversation.get()
        )
    if budget is None and isinstance(session, HistorySession):
        budget = session.budget
    new_input = (
        None
        if isinstance(call.input, RunState)
        else ItemHelpers.input_to_new_input_list(call.input)
    )
    outcome = RunOutcome(session, resolved, new_input, budget=budget)
    refusals: list[ServerManagedStateError] = []
    overrides = {
        "call_model_input_filter": model_input_filter(
            resolved,
            resolved.call_model_input_filter,
            refusals,
            budget=budget,
            plan=outcome.turns,
        )
    }
    run_config = _with_overrides(call.run_config, overrides)
    return PreparedRun(
        call=dataclasses.replace(call, session=session, run_config=run_config),
        outcome=outcome,
        refusals=refusals,
    )


def _with_overrides(
    run_config: RunConfig | dict[str, Any] | None, overrides: dict[str, Any]
) -> RunConfig | dict[str, Any]:
    if isinstance(run_config, RunConfig):
        return dataclasses.replace(run_config, **overrides)
    # Stay a dict so the SDK still creates, and closes, the model provider it owns.
    return {**(run_config or {}), **overrides}
