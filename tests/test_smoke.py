from history_store import HistoryStore


async def test_round_trip(store: HistoryStore) -> None:
    session = store.session("smoke")
    await session.add_items([{"role": "user", "content": "hi"}])
    assert await session.get_items() == [{"role": "user", "content": "hi"}]
