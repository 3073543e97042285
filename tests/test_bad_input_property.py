"""Property: arbitrary JSON items round-trip exactly (hypothesis), on SQLite and PostgreSQL.

Strings draw from every code point, lone surrogates and NUL included; numbers include huge
integers and every finite float. "Exactly" means equal and with the same JSON text: same key
order, same int/float kinds, same sign of zero. Arbitrary session ids either round-trip
or are refused with ``InvalidSessionIdError``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from history_store import HistoryStore, InvalidSessionIdError

_any_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=30)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _any_text
)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(_any_text, children, max_size=4)
    ),
    max_leaves=16,
)
json_items = st.dictionaries(_any_text, _json, max_size=5)


def _run_property(url: str, examples: int) -> int:
    """Round-trip ``examples`` drawn batches through one store; returns how many ran."""
    counter = itertools.count()
    with asyncio.Runner() as runner:
        store = HistoryStore(url, migrate="auto")

        async def round_trip(session_id: str, items: list[dict[str, Any]]) -> None:
            session = store.session(session_id)
            await session.add_items(items)  # type: ignore[arg-type]
            got = await session.get_items()
            assert got == items
            assert [json.dumps(item) for item in got] == [json.dumps(item) for item in items]

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(items=st.lists(json_items, min_size=1, max_size=3))
        def check(items: list[dict[str, Any]]) -> None:
            runner.run(round_trip(f"p{next(counter)}", items))

        try:
            check()
        finally:
            runner.run(store.close())
    return next(counter)


def test_arbitrary_json_items_round_trip_on_sqlite(tmp_path: Path) -> None:
    assert _run_property(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", 300) >= 300


def test_arbitrary_json_items_round_trip_on_postgresql(pg_url: str) -> None:
    assert _run_property(pg_url, 60) >= 60


def test_arbitrary_session_ids_round_trip_or_are_refused(tmp_path: Path) -> None:
    outcomes = {"stored": 0, "refused": 0}
    with asyncio.Runner() as runner:
        store = HistoryStore(f"sqlite+aiosqlite:///{tmp_path / 'ids.db'}")

        async def round_trip(session_id: str) -> None:
            try:
                session = store.session(session_id)
            except InvalidSessionIdError:
                outcomes["refused"] += 1
                return
            await session.clear_session()
            await session.add_items([{"role": "user", "content": session_id}])
            assert await session.get_items() == [{"role": "user", "content": session_id}]
            outcomes["stored"] += 1

        @settings(max_examples=150, deadline=None, database=None)
        @given(session_id=st.text(alphabet=st.characters(exclude_categories=()), max_size=20))
        def check(session_id: str) -> None:
            runner.run(round_trip(session_id))

        try:
            check()
        finally:
            runner.run(store.close())
    # Both outcomes happen: empty, NUL and surrogate ids are drawn, and ordinary ones.
    assert outcomes["stored"] > 0 and outcomes["refused"] > 0
