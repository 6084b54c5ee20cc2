"""The joints between the crawl's stages (scanner/pipeline/queues.py): bounded, closable, and a
failure anywhere stops everything and surfaces as itself."""
from __future__ import annotations

import asyncio

import pytest

from scanner.pipeline.queues import Closable, drain, together


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_full_queue_makes_its_producer_wait_until_a_consumer_takes_one():
    async def go():
        q: Closable[int] = Closable(2)
        await q.put(1)
        await q.put(2)
        third = asyncio.create_task(q.put(3))
        await asyncio.sleep(0.05)
        blocked = not third.done()
        assert await q.get() == 1
        await asyncio.wait_for(third, 1)
        return blocked
    assert run(go()) is True


def test_every_consumer_sees_the_end_once_all_producers_closed_and_items_are_taken():
    async def go():
        q: Closable[int] = Closable(10, producers=2)
        seen: list[int] = []

        async def handle(i: int) -> None:
            seen.append(i)

        async def produce(items: list[int]) -> None:
            for i in items:
                await q.put(i)
            q.close()

        await together(produce([1, 2, 3]), produce([4, 5]), drain(q, 3, handle))
        return sorted(seen)
    assert run(go()) == [1, 2, 3, 4, 5]


def test_closing_never_waits_even_when_the_queue_is_full_and_nobody_takes():
    async def go():
        q: Closable[int] = Closable(1)
        await q.put(1)
        q.close()  # synchronous: a `finally` of a cancelled stage can always close
        return await q.get(), await q.get(), await q.get()
    assert run(go()) == (1, None, None)


def test_a_failing_stage_stops_the_others_and_is_raised_as_itself():
    class StageBroke(Exception):
        pass

    cancelled = []

    async def forever() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def broken() -> None:
        await asyncio.sleep(0.01)
        raise StageBroke("boom")

    with pytest.raises(StageBroke):  # not an ExceptionGroup: the CLI's error mapping sees the real type
        run(together(forever(), broken(), forever()))
    assert cancelled == [True, True]


def test_together_returns_results_in_order():
    async def value(v: int, delay: float) -> int:
        await asyncio.sleep(delay)
        return v
    assert run(together(value(1, 0.03), value(2, 0.0), value(3, 0.01))) == [1, 2, 3]
