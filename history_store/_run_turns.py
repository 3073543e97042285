"""Which turns of a session one run wrote: what links the runner, which learns how a run
ended, to the session, which learns which turns its writes went into.

The runner puts a :class:`RunTurns` in :data:`current` before it starts the SDK's run; the
SDK's tasks copy the context, so every ``add_items`` of that run sees it, and the session
notes the turns its batches landed in (and the SDK's run context, whose usage is the run's).
A nested run (an agent used as a tool) under history_store gets its own; one that writes to
another session leaves this one alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .backends.base import TurnRecord

if TYPE_CHECKING:
    from ._window import Window
    from .budget.context import ContextBudget


@dataclass
class RunTurns:
    """The turns ``session`` got from one run, in order."""

    session: object
    started_at: datetime
    new_input: list[Any] | None = None
    """The run's new input items (``None`` for a resumed ``RunState``)."""
    turns: list[int] = field(default_factory=list)
    context: Any = None
    """The SDK's ``RunContextWrapper`` last seen by the session (its ``usage`` is the run's)."""
    budget: ContextBudget | None = None
    """The run's token budget, if it has one (else the session's applies)."""
    window: Window | None = None
    """The budgeted window the session last read for this run."""
    first_seq: int | None = None
    """The seq of the first item this run stored."""
    estimated_input_tokens: int = 0
    """The budget's estimate of every request's input so far, summed (calibration)."""
    window_first_seq: int | None = None
    """The oldest stored item the last request carried (else the first of this run)."""
    _retry_checked: bool = False

    def retried_tail(self, history: Sequence[Any]) -> int:
        """How many items at the end of ``history`` are this run's own input, left unanswered
        by an earlier run (0 if none; asked once per run).

        The SDK stores a run's input before it calls the model. A run that recorded how it
        ended hides a failed turn by its status; a run cut short before it could (the process
        killed) leaves its input stored with nothing after it. Running the same input again
        would send it twice. An input that got an answer is followed by it, so saying the
        same thing again ("yes", "yes") is a new turn.
        """
        if self._retry_checked or not self.new_input:
            return 0
        self._retry_checked = True
        count = len(self.new_input)
        if count <= len(history) and list(history[-count:]) == self.new_input:
            return count
        return 0

    def saw(self, first: int, last: int, context: Any, *, first_seq: int | None = None) -> None:
        """A write of this run went into turns ``first..last``, from seq ``first_seq`` on."""
        for turn in range(first, last + 1):
            if turn not in self.turns:
                self.turns.append(turn)
        if context is not None:
            self.context = context
        if self.first_seq is None:
            self.first_seq = first_seq

    def records(
        self,
        status: str,
        *,
        agent: str | None,
        model: str | None,
        usage: Any,
        finished_at: datetime,
    ) -> list[TurnRecord]:
        """One record per turn; the run's usage goes to its last turn, the one answered."""
        records = []
        for turn in self.turns:
            last = turn == self.turns[-1]
            records.append(
                TurnRecord(
                    turn=turn,
                    status=status,
                    agent=agent,
                    model=model,
                    requests=_count(usage, "requests") if last else None,
                    input_tokens=_count(usage, "input_tokens") if last else None,
                    output_tokens=_count(usage, "output_tokens") if last else None,
                    total_tokens=_count(usage, "total_tokens") if last else None,
                    started_at=self.started_at,
                    finished_at=finished_at,
                    estimated_input_tokens=(self.estimated_input_tokens or None) if last else None,
                    window_first_seq=self.window_first_seq if last else None,
                )
            )
        return records


def _count(usage: Any, name: str) -> int | None:
    value = getattr(usage, name, None)
    return value if isinstance(value, int) else None


current: ContextVar[RunTurns | None] = ContextVar("history_store_run_turns", default=None)
"""The run being recorded in this context, if any."""
