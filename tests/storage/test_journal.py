"""Handled events, posted epochs, callback deliveries and the audit log."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from storage import Store
from tests.storage.conftest import ADMIN, GUILD, OTHER_GUILD, USER, FakeClock, new_job


async def test_an_event_is_handled_once_even_across_restarts(store: Store, database_url: str, clock: FakeClock) -> None:
    job = await store.jobs.create(new_job())
    claims = await asyncio.gather(*(store.events.mark_handled(job.id, "status:processing") for _ in range(5)))
    assert claims.count(True) == 1
    assert await store.events.is_handled(job.id, "status:processing")
    assert not await store.events.is_handled(job.id, "epoch:1")
    await store.close()

    reopened = await Store.open(database_url, clock=clock)
    try:
        assert not await reopened.events.mark_handled(job.id, "status:processing")
        assert await reopened.events.mark_handled(job.id, "epoch:1")
        # A failed action gives its claim back so the next refresh retries it.
        assert await reopened.events.release(job.id, "epoch:1")
        assert await reopened.events.mark_handled(job.id, "epoch:1")
    finally:
        await reopened.close()


async def test_epochs_are_recorded_once_in_order(store: Store, clock: FakeClock) -> None:
    job = await store.jobs.create(new_job())
    assert await store.epochs.record_posted(job.id, 2, 902)
    assert await store.epochs.record_posted(job.id, 1, None)
    assert not await store.epochs.record_posted(job.id, 2, 999)
    assert await store.epochs.set_message(job.id, 1, 901)
    posted = await store.epochs.posted_epochs(job.id)
    assert [(e.epoch_number, e.message_id, e.posted_at) for e in posted] == [(1, 901, clock.now), (2, 902, clock.now)]


async def test_deliveries_are_recorded_and_purged(store: Store, clock: FakeClock) -> None:
    job = await store.jobs.create(new_job())
    old = await store.deliveries.record(job.id, "sha256:aa", "refreshed")
    clock.advance(days=15)
    new = await store.deliveries.record(job.id, "sha256:bb", "ignored: stale")
    assert [d.id for d in await store.deliveries.for_job(job.id)] == [new.id, old.id]
    assert await store.deliveries.purge_older_than(clock.now - timedelta(days=14)) == 1
    assert await store.deliveries.for_job(job.id) == [new]


async def test_audit_log_newest_first_per_guild(store: Store, clock: FakeClock) -> None:
    first = await store.audit.add(GUILD, ADMIN, "settings.payer", {"payer": "server"})
    clock.advance(seconds=1)
    second = await store.audit.add(GUILD, ADMIN, "member.block", {"reason": "spam"}, subject_id=USER)
    await store.audit.add(OTHER_GUILD, ADMIN, "settings.threads")
    recent = await store.audit.recent(GUILD)
    assert recent == [second, first]
    assert recent[0].subject_id == USER and recent[0].details == {"reason": "spam"} and recent[0].at == clock.now
    assert await store.audit.recent(GUILD, limit=1) == [second]
