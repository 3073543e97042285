"""The token budget's rules (``history_store.budget.context``), on plain numbers and lists.

No database and no server: ``ContextBudget``'s validation, ``room_for`` and its safety
margin (a property over limits and calibration ratios), ``whole_turns``,
``trim_oldest_turns`` and the summary message.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from history_store import ContextBudget, HistoryStoreError, InvalidArgumentError, Summarizer
from history_store.budget.context import (
    SAFETY_MARGIN,
    SUMMARY_PREFIX,
    Summarizes,
    SummaryDraft,
    is_summary_message,
    room_for,
    summary_message,
    trim_oldest_turns,
    whole_turns,
)
from history_store.budget.tokens import EstimateCounter, TokenCounter, calibrated

# -- ContextBudget ---------------------------------------------------------------------------


class DuckSummarizer:
    """Has everything ``Summarizes`` asks for, without being a ``history_store.Summarizer``."""

    max_input_tokens: int | None = None

    def overhead_tokens(self, counter: TokenCounter) -> int:
        return 10

    async def summarize(
        self, previous: str | None, items: Sequence[dict[str, Any]]
    ) -> SummaryDraft:
        return SummaryDraft("short")


class NoLimitSummarizer:
    """Can summarize, but lacks ``max_input_tokens`` (and ``overhead_tokens``)."""

    async def summarize(
        self, previous: str | None, items: Sequence[dict[str, Any]]
    ) -> SummaryDraft:
        return SummaryDraft("short")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_input_tokens": "1000"}, "max_input_tokens must be an int, got '1000'"),
        ({"max_input_tokens": 1000.0}, "max_input_tokens must be an int, got 1000.0"),
        ({"max_input_tokens": None}, "max_input_tokens must be an int, got None"),
        ({"max_input_tokens": True}, "max_input_tokens must be an int, got True"),
        (
            {"max_input_tokens": 1000, "reserve_output_tokens": False},
            "reserve_output_tokens must be an int, got False",
        ),
        (
            {"max_input_tokens": 1000, "reserve_output_tokens": 1.5},
            "reserve_output_tokens must be an int, got 1.5",
        ),
        (
            {"max_input_tokens": 1000, "reserve_output_tokens": -1},
            "reserve_output_tokens must be 0 or more, got -1",
        ),
        (
            {"max_input_tokens": 1000, "reserve_output_tokens": 1000},
            "max_input_tokens (1000) must be larger than reserve_output_tokens (1000)",
        ),
        (
            {"max_input_tokens": 1000, "reserve_output_tokens": 4000},
            "max_input_tokens (1000) must be larger than reserve_output_tokens (4000)",
        ),
        ({"max_input_tokens": 0}, "max_input_tokens (0) must be larger than"),
        ({"max_input_tokens": -5}, "max_input_tokens (-5) must be larger than"),
    ],
)
def test_invalid_numbers_are_refused_with_the_reason(
    arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        ContextBudget(**arguments)
    assert message in str(raised.value)
    # One error type for every bad argument, catchable as the library's and as ValueError.
    assert isinstance(raised.value, HistoryStoreError) and isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("summarizer", "kind"),
    [
        (object(), "object"),
        ("gpt-4o-mini", "str"),
        (NoLimitSummarizer(), "NoLimitSummarizer"),
        (lambda previous, items: "text", "function"),
    ],
)
def test_a_summarizer_without_the_protocol_is_refused(summarizer: Any, kind: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        ContextBudget(1000, summarizer=summarizer)
    said = str(raised.value)
    assert said.startswith("summarizer must be a history_store.Summarizer")
    assert ".summarize" in said and ".max_input_tokens" in said  # what it would need
    assert said.endswith(f"got {kind}")


@pytest.mark.parametrize("counter", [object(), "o200k_base", len])
def test_a_counter_without_the_protocol_is_refused(counter: Any) -> None:
    with pytest.raises(InvalidArgumentError, match=r"counter must be a TokenCounter \(with"):
        ContextBudget(1000, counter=counter)


def test_summarizers_with_the_protocol_are_accepted() -> None:
    duck = DuckSummarizer()
    assert isinstance(duck, Summarizes)
    assert ContextBudget(1000, summarizer=duck).summarizer is duck
    real = Summarizer("stub-model")
    assert ContextBudget(1000, 100, summarizer=real).summarizer is real
    assert ContextBudget(1000).summarizer is None


@pytest.mark.parametrize(
    ("max_input", "reserve", "limit"),
    [(1000, 0, 1000), (1000, 999, 1), (128_000, 16_384, 111_616), (1, 0, 1)],
)
def test_limit_is_the_context_less_the_reserve(max_input: int, reserve: int, limit: int) -> None:
    budget = ContextBudget(max_input, reserve)
    assert budget.limit == limit
    assert ContextBudget(max_input_tokens=max_input, reserve_output_tokens=reserve) == budget


def test_the_counter_is_not_part_of_equality_and_defaults_to_the_default_counter() -> None:
    counter = EstimateCounter()
    with_counter = ContextBudget(500, counter=counter)
    assert with_counter == ContextBudget(500)
    assert with_counter.token_counter() is counter
    assert isinstance(ContextBudget(500).token_counter(), TokenCounter)
    with pytest.raises(AttributeError):
        with_counter.max_input_tokens = 10  # type: ignore[misc]  # frozen


# -- room_for --------------------------------------------------------------------------------


def usable(limit: int) -> int:
    return math.floor(limit * (1 - SAFETY_MARGIN))


def test_the_safety_margin_is_three_percent() -> None:
    assert SAFETY_MARGIN == 0.03
    assert room_for(1000, 1.0) == 970
    assert room_for(100_000, 1.0) == 97_000
    assert room_for(1000, 2.0) == 485
    assert room_for(1000, 1.3) == 746  # 746 * 1.3 = 969.8; 747 * 1.3 = 971.1


@pytest.mark.parametrize("ratio", [1.0, 1.01, 1.1, 4 / 3, 1.3, 1.5, 2.0, 2.5, 3.7, 10.0])
@pytest.mark.parametrize("limit", [1, 2, 33, 100, 2048, 8192, 128_000, 1_000_000])
def test_room_for_stays_within_the_margin_at_common_ratios(limit: int, ratio: float) -> None:
    room = room_for(limit, ratio)
    assert room >= 0
    if room:
        assert calibrated(room, ratio) <= usable(limit)
    assert calibrated(room + 1, ratio) > usable(limit)


def test_room_for_is_zero_when_even_one_token_is_too_many() -> None:
    assert usable(1) == 0
    assert room_for(1, 1.0) == 0
    assert room_for(10, 50.0) == 0  # 9 usable, one token calibrates to 50


limits = st.integers(min_value=1, max_value=10_000_000)
ratios = st.floats(min_value=1.0, max_value=20.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=500, deadline=None)
@given(limit=limits, ratio=ratios)
@example(limit=30, ratio=29 / 14)
def test_room_for_never_exceeds_the_margin(limit: int, ratio: float) -> None:
    """The safety half: what room_for allows, calibrated, fits the limit less the margin."""
    room = room_for(limit, ratio)
    assert 0 <= room <= usable(limit)
    assert calibrated(room, ratio) <= usable(limit)


@settings(max_examples=500, deadline=None)
@given(limit=limits, ratio=ratios)
# Ratios of the form usable / k: k estimated tokens calibrate to exactly the usable share.
@example(limit=30, ratio=29 / 14)  # room_for(30, 29/14) == 13, yet 14 calibrates to 29 <= 29
@example(limit=107, ratio=103 / 92)
def test_room_for_is_the_largest_estimate_within_the_margin(limit: int, ratio: float) -> None:
    """calibrated(room) fits ``floor(limit * (1 - SAFETY_MARGIN))`` and room + 1 does not.

    When ``usable / ratio`` is an integer k in exact arithmetic, floating point can put
    ``floor(usable / ratio)`` at k - 1: k itself must still be found.
    """
    room = room_for(limit, ratio)
    assert calibrated(room, ratio) <= usable(limit)
    assert calibrated(room + 1, ratio) > usable(limit), (
        f"room_for({limit}, {ratio!r}) = {room}, but {room + 1} also fits: "
        f"calibrated({room + 1}) = {calibrated(room + 1, ratio)} <= {usable(limit)}"
    )


# -- whole_turns -----------------------------------------------------------------------------


def rows_of(*turns: int, first_seq: int = 1) -> list[tuple[int, str, int, int]]:
    """(seq, item_json, turn, tokens) rows, as ``Backend.read_recent`` returns them."""
    return [(first_seq + i, f'{{"n": {i}}}', turn, 10) for i, turn in enumerate(turns)]


def test_whole_turns_drops_a_leading_turn_the_window_edge_cut() -> None:
    rows = rows_of(3, 3, 4, 4, 4, 5, first_seq=7)
    # The row before seq 7 is of turn 3 too: turn 3 is cut, so none of it is sent.
    kept = whole_turns(rows, 3)
    assert kept == rows[2:]
    assert [row[2] for row in kept] == [4, 4, 4, 5]


@pytest.mark.parametrize("turn_before", [None, 2, 1])
def test_whole_turns_keeps_rows_that_begin_with_a_whole_turn(turn_before: int | None) -> None:
    rows = rows_of(3, 3, 4, 5)
    kept = whole_turns(rows, turn_before)
    assert kept == rows
    assert kept is not rows  # a new list: the caller's rows are never changed
    kept.pop()
    assert len(rows) == 4


def test_whole_turns_drops_only_the_cut_turn_not_a_later_turn_of_the_same_number() -> None:
    # Only the leading run of the cut turn goes (turn numbers never repeat later, but a
    # window's order is by seq, so nothing past the first other turn is looked at).
    rows = rows_of(3, 4, 3)
    assert whole_turns(rows, 3) == rows[1:]


def test_whole_turns_of_a_window_inside_one_turn_is_empty() -> None:
    assert whole_turns(rows_of(6, 6, 6), 6) == []
    assert whole_turns([], 6) == []
    assert whole_turns([], None) == []


def test_whole_turns_reads_the_turn_where_it_is_told() -> None:
    rows = [("t1", 1), ("t1", 2), ("t2", 3)]
    assert whole_turns(rows, "t1", turn_at=0) == [("t2", 3)]
    assert whole_turns(rows, "t0", turn_at=0) == rows


@settings(max_examples=300, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=5), min_size=0, max_size=8),
    first_turn=st.integers(min_value=1, max_value=50),
    before=st.sampled_from(["same", "other", "none"]),
)
def test_whole_turns_property(lengths: list[int], first_turn: int, before: str) -> None:
    """The result is a suffix of the rows that starts at a turn boundary, and only the first
    turn is ever dropped, exactly when the row before was of that turn."""
    turns = [first_turn + t for t, length in enumerate(lengths) for _ in range(length)]
    rows = rows_of(*turns)
    turn_before = {"same": first_turn, "other": first_turn - 1, "none": None}[before]
    kept = whole_turns(rows, turn_before)
    expected = rows[lengths[0] :] if rows and before == "same" else rows
    assert kept == expected


# -- trim_oldest_turns -----------------------------------------------------------------------


def test_trim_drops_whole_turns_only() -> None:
    turns = [1, 1, 1, 2, 2, 3]
    tokens = [5, 5, 5, 7, 7, 100]
    # Shedding 1 token drops all of turn 1, never a part of it.
    assert trim_oldest_turns(turns, tokens, 1) == 3
    assert trim_oldest_turns(turns, tokens, 15) == 3
    assert trim_oldest_turns(turns, tokens, 16) == 5
    assert trim_oldest_turns(turns, tokens, 29) == 5
    assert trim_oldest_turns(turns, tokens, 30) == 6


def test_trim_nothing_to_shed_drops_nothing() -> None:
    assert trim_oldest_turns([1, 2], [10, 10], 0) == 0
    assert trim_oldest_turns([1, 2], [10, 10], -50) == 0
    assert trim_oldest_turns([], [], 0) == 0


def test_trim_drops_everything_when_everything_is_not_enough() -> None:
    assert trim_oldest_turns([1, 1, 2], [3, 3, 3], 10) == 3
    assert trim_oldest_turns([], [], 10) == 0


def test_trim_a_turn_of_zero_tokens_is_not_dropped_for_nothing() -> None:
    # A turn that sheds nothing is still dropped on the way to one that does.
    assert trim_oldest_turns([1, 2, 2], [0, 4, 4], 1) == 3
    # ... but never past the point where enough is shed.
    assert trim_oldest_turns([1, 2, 3], [4, 0, 4], 4) == 1


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[int], list[int], int]:
    lengths = draw(st.lists(st.integers(min_value=1, max_value=4), max_size=10))
    turns = [t + 1 for t, length in enumerate(lengths) for _ in range(length)]
    tokens = draw(
        st.lists(st.integers(min_value=0, max_value=50), min_size=len(turns), max_size=len(turns))
    )
    excess = draw(st.integers(min_value=-5, max_value=sum(tokens) + 20))
    return turns, tokens, excess


@settings(max_examples=500, deadline=None)
@given(histories())
def test_trim_is_the_smallest_whole_turn_count_that_sheds_enough(
    case: tuple[list[int], list[int], int],
) -> None:
    turns, tokens, excess = case
    count = trim_oldest_turns(turns, tokens, excess)
    # Turn boundaries: 0, each index where a new turn starts, and len(turns).
    boundaries = [0, *(i for i in range(1, len(turns)) if turns[i] != turns[i - 1]), len(turns)]
    assert count in boundaries
    enough = [b for b in boundaries if sum(tokens[:b]) >= excess]
    assert count == (min(enough) if enough else len(turns))


# -- summary_message -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["covered 1,2,3", "", "line one\nline two", "ünïcödé ✓ 🎉", SUMMARY_PREFIX]
)
def test_summary_message_round_trips(text: str) -> None:
    message = summary_message(text)
    assert message == {"role": "system", "content": SUMMARY_PREFIX + text}
    assert is_summary_message(message)
    assert message["content"].removeprefix(SUMMARY_PREFIX) == text
    # What a model is sent: one system message, counted as one item.
    assert EstimateCounter().count_item(message) == 4 + math.ceil(len(message["content"]) / 4)


@pytest.mark.parametrize(
    "item",
    [
        {"role": "user", "content": SUMMARY_PREFIX + "x"},  # not a system message
        {"role": "developer", "content": SUMMARY_PREFIX + "x"},
        {"role": "assistant", "content": SUMMARY_PREFIX + "x"},
        {"role": "system", "content": "Answer briefly."},  # a plain system prompt
        {"role": "system", "content": SUMMARY_PREFIX.rstrip("\n") + " x"},  # prefix, no newline
        {"role": "system", "content": " " + SUMMARY_PREFIX + "x"},  # not at the start
        {"role": "system", "content": SUMMARY_PREFIX.lower() + "x"},
        {"role": "system", "content": [{"type": "input_text", "text": SUMMARY_PREFIX + "x"}]},
        {"role": "system"},
        {"content": SUMMARY_PREFIX + "x"},
        {"type": "message", "role": "System", "content": SUMMARY_PREFIX + "x"},
        [("role", "system"), ("content", SUMMARY_PREFIX + "x")],
        SUMMARY_PREFIX + "x",
        None,
    ],
)
def test_look_alikes_are_not_summary_messages(item: Any) -> None:
    assert not is_summary_message(item)


def test_a_summary_message_with_extra_keys_is_still_one() -> None:
    # The SDK may add keys (an id, a type) to a message it read back.
    item = {"type": "message", **summary_message("covered 1")}
    assert is_summary_message(item)
