"""How a run ended, written to ``hs_turns`` for the turns it stored.

A run through history_store with a :class:`HistorySession` is watched by a
:class:`RunOutcome`: while it runs, the session notes which turns its writes go into
(``_run_turns``); when it ends, each of those turns gets its status (``completed``,
``failed``, ``blocked`` when a guardrail tripped, ``interrupted`` when it paused for an
approval), the agent and model that last answered, and the usage the provider reported.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

from agents import Agent, RunConfig
from agents.exceptions import (
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    ToolInputGuardrailTripwireTriggered,
    ToolOutputGuardrailTripwireTriggered,
)
from agents.memory import Session

from .. import _run_turns as run_turns
from .._compaction import compact
from .._time import utcnow
from ..budget.context import ContextBudget
from ..session import HistorySession
from .models import model_name, resolve_model

logger = logging.getLogger("history_store")

_TRIPWIRES = (
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    ToolInputGuardrailTripwireTriggered,
    ToolOutputGuardrailTripwireTriggered,
)


def turn_status(result: Any, error: BaseException | None) -> str:
    """``blocked`` for a tripped guardrail, ``failed`` for any other error (cancellation
    included), ``interrupted`` for a run paused on approvals, else ``completed``."""
    if error is not None:
        return "blocked" if isinstance(error, _TRIPWIRES) else "failed"
    return "interrupted" if getattr(result, "interruptions", None) else "completed"


class RunOutcome:
    """Watches one run on ``session`` and records how its turns ended (a no-op for a session
    that is not a :class:`HistorySession`)."""

    def __init__(
        self,
        session: Session | None,
        run_config: RunConfig,
        new_input: list[Any] | None,
        *,
        budget: ContextBudget | None = None,
    ) -> None:
        self._session = session if isinstance(session, HistorySession) else None
        self._run_config = run_config
        self._turns = (
            run_turns.RunTurns(
                session=self._session, started_at=utcnow(), new_input=new_input, budget=budget
            )
            if self._session is not None
            else None
        )

    @property
    def turns(self) -> run_turns.RunTurns | None:
        """What the session and the model-input filter note of this run (``None`` without a
        HistorySession)."""
        return self._turns

    @property
    def active(self) -> bool:
        """Whether there is anything to record (the run's session is a HistorySession)."""
        return self._turns is not None

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """While inside, the session's writes in this context (and in the tasks started from
        it) are noted as this run's."""
        if self._turns is None:
            yield
            return
        token = run_turns.current.set(self._turns)
        try:
            yield
        finally:
            run_turns.current.reset(token)

    async def finished(self, result: Any) -> None:
        """The run returned ``result``: its turns recorded, then (with a budget that has a
        summarizer) what left the window summarized. A summarizer's failure is logged, and
        the plain window is used."""
        await self._record(result, None)
        if turn_status(result, None) == "completed":
            await self._compact()

    async def _compact(self) -> None:
        turns, session = self._turns, self._session
        if session is None or turns is None or not turns.turns:
            return
        budget = turns.budget  # the run's, else the session's (``prepare`` chose)
        if budget is None or budget.summarizer is None:
            return
        try:
            backend = await session.store.backend()
            await compact(
                backend,
                session.session_id,
                budget,
                budget.summarizer,
                sent_from=turns.window_first_seq,
            )
        except Exception as error:
            logger.warning(
                "could not summarize the turns that left the window of session %r (%s: %s); "
                "they stay stored, and the window without a new summary is used",
                session.session_id,
                type(error).__name__,
                error,
            )

    async def failed(self, error: BaseException) -> None:
        """The run raised ``error``. A failure to record is logged, never raised over it."""
        try:
            await self._record(None, error)
        except Exception as record_error:
            logger.warning(
                "could not record the failed turn of session %r: %s",
                self._session.session_id if self._session is not None else None,
                record_error,
            )

    async def _record(self, result: Any, error: BaseException | None) -> None:
        if self._session is None or self._turns is None or not self._turns.turns:
            return
        # The SDK attaches what it knows of a failed run to its AgentsException.
        details = result if result is not None else getattr(error, "run_data", None)
        context = getattr(details, "context_wrapper", None) or self._turns.context
        agent = getattr(details, "last_agent", None)
        records = self._turns.records(
            turn_status(result, error),
            agent=agent.name if isinstance(agent, Agent) else None,
            model=self._model_of(agent),
            usage=getattr(context, "usage", None),
            finished_at=utcnow(),
        )
        backend = await self._session.store.backend()
        await backend.record_turns(self._session.session_id, records)

    def _model_of(self, agent: object) -> str | None:
        if not isinstance(agent, Agent):
            return None
        try:
            return model_name(resolve_model(agent, self._run_config).model)
        except Exception:  # the run resolved it already; a name is only for display
            return None
