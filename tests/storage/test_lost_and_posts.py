"""Ending a run lost, remembering a thread fallback, intents before posts, audit entries once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiosqlite

from storage import Store
from storage.migrations import apply_migrations, load_migrations
from storage.models import JobStatus
from tests.storage.conftest import GUILD, USER, new_job
from tests.storage.test_jobs import submitted


async def test_a_run_is_lost_only_from_a_followed_status_and_once(store: Store) -> None:
    job_id = await submitted(store)
    assert await store.jobs.count_active_for_user(GUILD, USER) == 1
    assert await store.jobs.mark_lost(job_id, "workflow_gone")
    lost = await store.jobs.get(job_id)
    assert lost is not None and lost.status is JobStatus.LOST and lost.end_reason == "workflow_gone"
    assert lost.finished_at is not None and await store.jobs.count_active_for_user(GUILD, USER) == 0
    assert not await store.jobs.mark_lost(job_id, "token_removed")  # terminal: it stays as it ended
    assert (await store.jobs.get(job_id)).end_reason == "workflow_gone"  # type: ignore[union-attr]

    ended = await submitted(store, "ended")
    assert await store.jobs.update_state(ended, JobStatus.SUCCEEDED, None, 1.0)
    assert not await store.jobs.mark_lost(ended, "workflow_gone")
    draft = await store.jobs.create(new_job())
    assert not await store.jobs.mark_lost(draft.id, "workflow_gone")
    assert await store.jobs.claim_for_submit(draft.id)  # a submit in flight is never taken
    assert not await store.jobs.mark_lost(draft.id, "workflow_gone")


async def test_a_thread_fallback_is_remembered_once(store: Store) -> None:
    job_id = await submitted(store)
    results = await asyncio.gather(*(store.jobs.mark_thread_gone(job_id) for _ in range(3)))
    assert sorted(results) == [False, False, True]
    assert (await store.jobs.get(job_id)).thread_gone  # type: ignore[union-attr]


async def test_an_intent_is_recorded_once_and_says_a_post_may_exist(store: Store) -> None:
    job_id = await submitted(store)
    assert await store.intents.intend(job_id, "epoch:1")
    assert not await store.intents.intend(job_id, "epoch:1")  # an earlier attempt: look before posting
    assert await store.intents.intend(job_id, "notice:end")
    assert await store.intents.intended(job_id) == ["epoch:1", "notice:end"]


async def test_an_audit_entry_about_a_job_is_added_once(store: Store) -> None:
    job_id = await submitted(store)
    entries = await asyncio.gather(
        *(store.audit.add_once(job_id, "audit:end", GUILD, None, "job.lost", {"job": job_id}) for _ in range(3))
    )
    assert len([e for e in entries if e is not None]) == 1
    assert [e.action for e in await store.audit.recent(GUILD)] == ["job.lost"]


async def test_a_deleted_thread_recorded_as_an_event_moves_to_the_job(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    async with aiosqlite.connect(db_path, isolation_level=None) as conn:
        await apply_migrations(conn, [m for m in load_migrations() if m.version <= 3])
        t = "2026-01-01T00:00:00.000Z"
        for job in ("j1", "j2"):
            await conn.execute(
                "INSERT INTO jobs (id, guild_id, channel_id, user_id, name, variant, params, dataset_digest,"
                " image_count, payer, token_source, external_id, status, created_at, updated_at)"
                " VALUES (?, 1, 2, 3, 'n', 'dev', '{}', 'd', 4, 'operator', 'operator', ?, 'submitted', ?, ?)",
                (job, f"x-{job}", t, t),
            )
        await conn.execute("INSERT INTO handled_events VALUES ('j1', 'thread:gone', ?)", (t,))
        await conn.execute("INSERT INTO handled_events VALUES ('j1', 'notice:end', ?)", (t,))
    store = await Store.open(db_path)
    try:
        assert (await store.jobs.get("j1")).thread_gone  # type: ignore[union-attr]
        assert not (await store.jobs.get("j2")).thread_gone  # type: ignore[union-attr]
        assert not await store.events.is_handled("j1", "thread:gone")
        assert await store.events.is_handled("j1", "notice:end")
    finally:
        await store.close()
