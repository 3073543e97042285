"""A context budget: how many tokens a request may carry, and what of a history fits in it.

:class:`ContextBudget` is the setting (``HistoryStore(budget=)``, ``store.session(id,
budget=)``, ``Runner.run(..., budget=)``). The functions below are the rules a budgeted
session and the runner apply, on plain numbers and lists, so they read no database:

* :func:`whole_turns`: the newest stored rows that fit, without the turn cut at the edge;
* :func:`summary_message`: how a stored summary is sent (one leading message);
* :func:`trim_oldest_turns`: which leading history turns a request must drop to fit.

A count is an estimate (``TokenCounter``) times the session's calibration ratio
(:func:`~history_store.budget.tokens.calibration_ratio`), rounded up; a request fits when
that is at most :attr:`ContextBudget.limit` less a :data:`SAFETY_MARGIN` of 3%.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

from ..errors import InvalidArgumentError
from .tokens import TokenCounter, calibrated, default_counter

__all__ = [
    "ContextBudget",
    "SummaryDraft",
    "Summarizes",
    "SUMMARY_PREFIX",
    "summary_message",
    "is_summary_message",
    "room_for",
    "SAFETY_MARGIN",
    "whole_turns",
    "trim_oldest_turns",
]

SUMMARY_PREFIX = "Summary of the earlier conversation (its full text stays stored):\n"
"""How a summary's text is introduced to the model."""

_Row = TypeVar("_Row", bound=Sequence[Any])


@dataclass(frozen=True, slots=True)
class SummaryDraft:
    """A summary a :class:`Summarizes` wrote, and what writing it cost."""

    text: str
    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None


@runtime_checkable
class Summarizes(Protocol):
    """What a budget's ``summarizer`` does (:class:`history_store.Summarizer` is one).

    ``summarize`` gets the text of the previous summary (``None`` for the first) and the
    items that left the window, oldest first, and returns the new summary, which stands for
    both. ``max_input_tokens`` bounds one summarizing request (``None``: the budget's own
    limit), so a long stretch of history is folded in pieces: each piece's items, the
    previous summary and :meth:`overhead_tokens` fit it.
    """

    max_input_tokens: int | None

    def overhead_tokens(self, counter: TokenCounter) -> int:
        """What one summarizing request costs besides the items and the previous summary
        (its instructions and framing), counted with ``counter``."""
        ...

    async def summarize(
        self, previous: str | None, items: Sequence[dict[str, Any]]
    ) -> SummaryDraft:
        """The summary of ``previous`` followed by ``items``."""
        ...


@dataclass(frozen=True)
class ContextBudget:
    """How many tokens a model request may carry, so a conversation never outgrows its model.

    Args:
        max_input_tokens: the model's context window (or less: what you want to pay for).
        reserve_output_tokens: tokens kept free for the reply; a request's input gets at most
            ``max_input_tokens - reserve_output_tokens`` (:attr:`limit`).
        summarizer: folds the turns that leave the window into a stored summary sent ahead
            of the window (:class:`history_store.Summarizer`); ``None``: they are only left
            out (always kept stored).
        counter: counts tokens (default: :func:`~history_store.budget.tokens.default_counter`,
            tiktoken's ``o200k_base`` when installed, else the characters / 4 estimate). Its
            counts are calibrated by the input tokens the server reported for earlier turns.

    With a budget, a session's ``get_items()`` without a limit returns the newest summary (if
    any) as one leading message and then the newest whole turns that fit :attr:`limit`;
    through ``history_store.Runner`` a request's instructions, tool and handoff schemas and
    new input count too, and the oldest turns are dropped until it fits.
    """

    max_input_tokens: int
    reserve_output_tokens: int = 0
    summarizer: Summarizes | None = None
    counter: TokenCounter | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        for name in ("max_input_tokens", "reserve_output_tokens"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise InvalidArgumentError(f"{name} must be an int, got {value!r}")
        if self.reserve_output_tokens < 0:
            raise InvalidArgumentError(
                f"reserve_output_tokens must be 0 or more, got {self.reserve_output_tokens}"
            )
        if self.limit < 1:
            raise InvalidArgumentError(
                f"max_input_tokens ({self.max_input_tokens}) must be larger than "
                f"reserve_output_tokens ({self.reserve_output_tokens})"
            )
        if self.counter is not None and not isinstance(self.counter, TokenCounter):
            raise InvalidArgumentError(
                f"counter must be a TokenCounter (with .count_text and .count_item), got "
                f"{type(self.counter).__name__}"
            )
        if self.summarizer is not None and not isinstance(self.summarizer, Summarizes):
            raise InvalidArgumentError(
                f"summarizer must be a history_store.Summarizer (or have .summarize and "
                f".max_input_tokens), got {type(self.summarizer).__name__}"
            )

    @property
    def limit(self) -> int:
        """The most input tokens a request may carry: ``max_input_tokens -
        reserve_output_tokens``."""
        return self.max_input_tokens - self.reserve_output_tokens

    def token_counter(self) -> TokenCounter:
        """``counter``, or the default counter."""
        return self.counter if self.counter is not None else default_counter()


def summary_message(text: str) -> dict[str, Any]:
    """The message a summary is sent as, ahead of the window."""
    return {"role": "system", "content": SUMMARY_PREFIX + text}


def is_summary_message(item: object) -> bool:
    """Whether ``item`` is a :func:`summary_message`."""
    if not isinstance(item, dict) or item.get("role") != "system":
        return False
    content = item.get("content")
    return isinstance(content, str) and content.startswith(SUMMARY_PREFIX)


SAFETY_MARGIN = 0.03
"""The share of a limit a budget leaves unused: a calibration ratio measured on earlier
requests is off by a few percent on the next (another mix of text, another tokenizer's
luck), and one token over fails the request."""


def room_for(limit: int, ratio: float) -> int:
    """The largest estimate that, calibrated by ``ratio``, stays within ``limit`` less the
    :data:`SAFETY_MARGIN`."""
    usable = math.floor(limit * (1 - SAFETY_MARGIN))
    room = math.floor(usable / ratio)
    # Float division can land one off either way of the exact answer.
    while room > 0 and calibrated(room, ratio) > usable:
        room -= 1
    while calibrated(room + 1, ratio) <= usable:
        room += 1
    return max(room, 0)


def whole_turns(rows: Sequence[_Row], turn_before: int | None, *, turn_at: int = 2) -> list[_Row]:
    """``rows`` (oldest first) without their leading turn if it began before them.

    ``turn_before`` is the turn of the stored row just before ``rows[0]`` (``None``: none);
    when it equals ``rows[0]``'s, the window's edge cut that turn, and a turn is sent whole
    or not at all (so a tool call never goes without its output). ``turn_at`` is the index
    of the turn in a row.
    """
    if not rows or turn_before is None or rows[0][turn_at] != turn_before:
        return list(rows)
    cut = rows[0][turn_at]
    start = 0
    while start < len(rows) and rows[start][turn_at] == cut:
        start += 1
    return list(rows[start:])


def trim_oldest_turns(turns: Sequence[int], tokens: Sequence[int], excess: int) -> int:
    """How many leading history items to drop, whole turns at a time, to shed ``excess``
    tokens: the smallest such count, or ``len(turns)`` when all of them are not enough.

    ``turns[i]`` and ``tokens[i]`` are the turn and the estimated tokens of history item
    ``i``, oldest first.
    """
    shed, index = 0, 0
    while index < len(turns) and shed < excess:
        turn = turns[index]
        while index < len(turns) and turns[index] == turn:
            shed += tokens[index]
            index += 1
    return index
