"""Group commit of delivery records: shared writes, individual answers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from bot.web.batching import Delivery, DeliveryBatcher
from bot.web.protocols import DeliveryOutcome

ACCEPTED = DeliveryOutcome.ACCEPTED


class Writer:
    def __init__(self) -> None:
        self.batches: list[list[Delivery]] = []
        self.fail: Exception | None = None
        self.gone: set[str] = set()  # jobs deleted: the store skips their rows
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, batch: Sequence[Delivery]) -> set[str]:
        await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        self.batches.append([d for d in batch if d.job_id not in self.gone])
        return {d.job_id for d in batch} & self.gone


async def test_a_lone_delivery_is_written_at_once() -> None:
    writer = Writer()
    batcher = DeliveryBatcher(writer)
    await asyncio.wait_for(batcher.record_delivery("1", "d1", ACCEPTED), 2)
    assert writer.batches == [[Delivery("1", "d1", ACCEPTED)]]


async def test_deliveries_arriving_during_a_write_share_the_next_one() -> None:
    writer = Writer()
    batcher = DeliveryBatcher(writer, max_batch=3)
    writer.gate.clear()
    first = asyncio.create_task(batcher.record_delivery("1", "a", ACCEPTED))
    await asyncio.sleep(0.01)  # the first write has started and is held
    rest = [asyncio.create_task(batcher.record_delivery(str(i), "b", ACCEPTED)) for i in range(2, 7)]
    await asyncio.sleep(0.01)
    assert not first.done()
    writer.gate.set()
    await asyncio.wait_for(asyncio.gather(first, *rest), 2)
    assert [len(batch) for batch in writer.batches] == [1, 3, 2]
    assert sorted(d.job_id for batch in writer.batches for d in batch) == [str(i) for i in range(1, 7)]


async def test_a_failed_write_fails_every_caller_in_it_and_the_next_batch_still_runs() -> None:
    writer = Writer()
    batcher = DeliveryBatcher(writer)
    writer.fail = RuntimeError("disk I/O error")
    results = await asyncio.gather(
        *(batcher.record_delivery(str(i), "x", ACCEPTED) for i in range(3)), return_exceptions=True
    )
    assert all(isinstance(result, RuntimeError) for result in results)
    writer.fail = None
    await asyncio.wait_for(batcher.record_delivery("9", "y", ACCEPTED), 2)
    assert writer.batches == [[Delivery("9", "y", ACCEPTED)]]


async def test_cancelling_the_writer_releases_the_waiters() -> None:
    writer = Writer()
    batcher = DeliveryBatcher(writer)
    writer.gate.clear()
    waiter = asyncio.create_task(batcher.record_delivery("1", "a", ACCEPTED))
    await asyncio.sleep(0.01)
    assert batcher._writer is not None
    batcher._writer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiter, 2)


async def test_flush_waits_for_the_writes_in_progress() -> None:
    writer = Writer()
    batcher = DeliveryBatcher(writer)
    writer.gate.clear()
    waiters = [asyncio.create_task(batcher.record_delivery(str(i), "a", ACCEPTED)) for i in range(3)]
    await asyncio.sleep(0.01)
    asyncio.get_running_loop().call_later(0.02, writer.gate.set)
    await asyncio.wait_for(batcher.flush(), 2)
    assert sum(len(batch) for batch in writer.batches) == 3
    await asyncio.gather(*waiters)


async def test_each_caller_learns_whether_its_job_still_existed() -> None:
    writer = Writer()
    writer.gone = {"2"}
    batcher = DeliveryBatcher(writer)
    writer.gate.clear()
    waiters = [asyncio.create_task(batcher.record_delivery(str(i), "a", ACCEPTED)) for i in range(1, 4)]
    await asyncio.sleep(0.01)
    writer.gate.set()
    assert await asyncio.wait_for(asyncio.gather(*waiters), 2) == [True, False, True]
