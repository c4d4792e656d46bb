"""Jobs: creation, the submit claim under races, state updates, listings and search."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from storage import Store
from storage.models import ClaimRefusal, JobStatus, Payer, SubmitLimits
from tests.storage.conftest import CHANNEL, GUILD, OTHER_GUILD, OTHER_USER, USER, FakeClock, new_job

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


async def submitted(store: Store, name: str = "job", workflow: str | None = None, **changes: object) -> str:
    job = await store.jobs.create(new_job(name=name, **changes))
    assert await store.jobs.claim_for_submit(job.id)
    assert await store.jobs.mark_submitted(job.id, workflow or f"wf-{job.id}", 2010.0) is not None
    return job.id


async def test_create_stores_a_draft_with_fresh_ids(store: Store, clock: FakeClock) -> None:
    job = await store.jobs.create(new_job())
    other = await store.jobs.create(new_job())
    assert re.fullmatch(r"[a-z0-9]{10}", job.id) and job.id != other.id
    assert EXTERNAL_ID.match(job.external_id) and job.external_id != other.external_id
    assert job.status is JobStatus.DRAFT
    assert job.params == {"steps": 2000, "epochs": 10, "sample_prompts": ["a cat"]}
    assert job.hook_secret_hash == "hash-of-the-hook-secret"
    assert (job.workflow_id, job.price_charged, job.finished_at) == (None, None, None)
    assert job.created_at == job.updated_at == clock.now
    assert await store.jobs.get(job.id) == job
    assert await store.jobs.get_by_external_id(job.external_id) == job
    assert await store.jobs.get("nope") is None


async def test_concurrent_confirm_clicks_claim_once(store: Store) -> None:
    job = await store.jobs.create(new_job())
    results = await asyncio.gather(*(store.jobs.claim_for_submit(job.id) for _ in range(10)))
    assert [bool(claim) for claim in results].count(True) == 1
    assert (await store.jobs.get(job.id)).status is JobStatus.SUBMITTING  # type: ignore[union-attr]


async def test_two_processes_claim_once(store: Store, db_path: Path) -> None:
    job = await store.jobs.create(new_job())
    second = await Store.open(db_path)
    try:
        results = await asyncio.gather(*(s.jobs.claim_for_submit(job.id) for _ in range(5) for s in (store, second)))
    finally:
        await second.close()
    assert [bool(claim) for claim in results].count(True) == 1


async def test_mark_submitted_is_idempotent_and_charges_once(store: Store, clock: FakeClock) -> None:
    job = await store.jobs.create(new_job())
    assert await store.jobs.mark_submitted(job.id, "wf-1", 2010.0) is None  # not claimed yet
    assert await store.jobs.claim_for_submit(job.id)
    done = await store.jobs.mark_submitted(job.id, "wf-1", 2010.0)
    assert done is not None
    assert (done.status, done.workflow_id, done.price_charged, done.submitted_at) == (
        JobStatus.SUBMITTED,
        "wf-1",
        2010.0,
        clock.now,
    )
    again = await store.jobs.mark_submitted(job.id, "wf-1", 2010.0)
    assert again == done
    assert await store.jobs.mark_submitted(job.id, "wf-other", 2010.0) is None
    assert await store.ledger.spent_for_job(job.id) == 2010.0
    assert await store.jobs.get_by_workflow("wf-1") == done


async def test_update_state_mirrors_the_workflow_until_terminal(store: Store, clock: FakeClock) -> None:
    job_id = await submitted(store)
    clock.advance(minutes=1)
    assert await store.jobs.update_state(job_id, JobStatus.PROCESSING, {"status": "processing"}, 0.4)
    job = await store.jobs.get(job_id)
    assert job is not None
    assert (job.status, job.last_state, job.progress, job.last_state_at) == (
        JobStatus.PROCESSING,
        {"status": "processing"},
        0.4,
        clock.now,
    )
    assert job.finished_at is None
    clock.advance(minutes=1)
    assert await store.jobs.update_state(job_id, JobStatus.SUCCEEDED, {"status": "succeeded"}, 1.5)
    finished_at = clock.now
    clock.advance(minutes=1)
    # Terminal statuses never change; the same terminal status may refresh the stored state.
    assert not await store.jobs.update_state(job_id, JobStatus.PROCESSING, {"status": "processing"}, 0.5)
    assert await store.jobs.update_state(job_id, JobStatus.SUCCEEDED, {"status": "succeeded", "more": 1}, 1.0)
    job = await store.jobs.get(job_id)
    assert job is not None
    assert job.status is JobStatus.SUCCEEDED and job.progress == 1.0
    assert job.finished_at == finished_at
    assert job.last_state == {"status": "succeeded", "more": 1}


async def test_update_state_refuses_drafts_and_local_statuses(store: Store) -> None:
    job = await store.jobs.create(new_job())
    assert not await store.jobs.update_state(job.id, JobStatus.PROCESSING, {}, None)
    with pytest.raises(ValueError, match="orchestrator status"):
        await store.jobs.update_state(job.id, JobStatus.SUBMITTED, {}, None)


async def test_draft_edits_release_and_discard(store: Store, clock: FakeClock) -> None:
    job = await store.jobs.create(new_job())
    assert await store.jobs.update_draft(job.id, {"steps": 100}, 1600.0, 1610.0)
    edited = await store.jobs.get(job.id)
    assert edited is not None and edited.params == {"steps": 100} and edited.price_quoted == 1610.0
    assert await store.jobs.claim_for_submit(job.id)
    assert not await store.jobs.update_draft(job.id, {"steps": 1}, None, None)
    assert await store.jobs.release_claim(job.id)
    assert await store.jobs.claim_for_submit(job.id)
    assert not await store.jobs.discard(job.id)  # a submit on its way is never discarded blindly
    assert await store.jobs.abandon_submit(job.id)
    discarded = await store.jobs.get(job.id)
    assert discarded is not None and discarded.status is JobStatus.DISCARDED and discarded.finished_at == clock.now
    assert not await store.jobs.claim_for_submit(job.id)


async def test_discard_draft_leaves_a_claimed_job_alone(store: Store) -> None:
    job = await store.jobs.create(new_job())
    assert await store.jobs.claim_for_submit(job.id)
    assert not await store.jobs.discard_draft(job.id)
    assert (await store.jobs.get(job.id)).status is JobStatus.SUBMITTING  # type: ignore[union-attr]
    assert await store.jobs.release_claim(job.id)
    assert await store.jobs.discard_draft(job.id)
    assert (await store.jobs.get(job.id)).status is JobStatus.DISCARDED  # type: ignore[union-attr]


async def test_stale_drafts_are_discarded(store: Store, clock: FakeClock) -> None:
    old = await store.jobs.create(new_job())
    clock.advance(minutes=20)
    fresh = await store.jobs.create(new_job())
    assert await store.jobs.discard_stale_drafts(clock.now - timedelta(minutes=15)) == 1
    assert (await store.jobs.get(old.id)).status is JobStatus.DISCARDED  # type: ignore[union-attr]
    assert (await store.jobs.get(fresh.id)).status is JobStatus.DRAFT  # type: ignore[union-attr]


async def test_card_and_thread(store: Store) -> None:
    job = await store.jobs.create(new_job())
    assert await store.jobs.set_card(job.id, CHANNEL, 42)
    assert await store.jobs.set_thread(job.id, 43)
    assert not await store.jobs.set_thread("missing", 1)
    stored = await store.jobs.get(job.id)
    assert stored is not None and (stored.card_channel_id, stored.card_message_id, stored.thread_id) == (
        CHANNEL,
        42,
        43,
    )


async def test_hook_secret_hash_is_set_before_submit(store: Store) -> None:
    job = await store.jobs.create(new_job())
    assert await store.jobs.set_hook_secret_hash(job.id, "ab" * 32)
    assert (await store.jobs.get(job.id)).hook_secret_hash == "ab" * 32  # type: ignore[union-attr]
    assert not await store.jobs.set_hook_secret_hash("missing", "x")


async def test_listings_filter_and_page_newest_first(store: Store, clock: FakeClock) -> None:
    ids = []
    for n in range(5):
        clock.advance(seconds=1)
        ids.append(await submitted(store, name=f"mine-{n}"))
    clock.advance(seconds=1)
    other = await submitted(store, name="theirs", user_id=OTHER_USER)
    elsewhere = await submitted(store, name="elsewhere", guild_id=OTHER_GUILD)
    await store.jobs.update_state(ids[0], JobStatus.SUCCEEDED, {}, 1.0)

    mine = await store.jobs.list_for_user(USER, guild_id=GUILD)
    assert [j.id for j in mine] == ids[::-1]
    page2 = await store.jobs.list_for_user(USER, guild_id=GUILD, limit=2, offset=2)
    assert [j.id for j in page2] == [ids[2], ids[1]]
    assert [j.id for j in await store.jobs.list_for_user(USER, status=JobStatus.SUCCEEDED)] == [ids[0]]
    assert len(await store.jobs.list_for_user(USER)) == 6  # both guilds
    assert await store.jobs.count(guild_id=GUILD, user_id=USER) == 5
    assert await store.jobs.count(user_id=USER, status=[]) == 0

    in_guild = await store.jobs.matching(guild_id=GUILD)
    assert other in [j.id for j in in_guild] and elsewhere not in [j.id for j in in_guild]
    assert [j.id for j in await store.jobs.matching(guild_id=GUILD, user_id=OTHER_USER)] == [other]
    assert await store.jobs.count_active_for_user(GUILD, USER) == 4


async def test_unfinished_jobs_include_interrupted_submits(store: Store) -> None:
    draft = await store.jobs.create(new_job())
    submitting = await store.jobs.create(new_job())
    await store.jobs.claim_for_submit(submitting.id)
    running = await submitted(store)
    done = await submitted(store)
    await store.jobs.update_state(done, JobStatus.FAILED, {}, None)
    unfinished = {j.id for j in await store.jobs.list_unfinished()}
    assert unfinished == {submitting.id, running}
    assert draft.id not in unfinished
    assert await store.jobs.count_active_for_user(GUILD, USER) == 2


async def test_search_by_name_or_id_prefix(store: Store) -> None:
    cat = await submitted(store, name="Cat_Style")
    await submitted(store, name="CatXStyle")
    dog = await submitted(store, name="dog")
    await store.jobs.update_state(cat, JobStatus.SUCCEEDED, {}, 1.0)
    await submitted(store, name="cat-of-someone-else", user_id=OTHER_USER)

    assert {j.name for j in await store.jobs.search(USER, "cat")} == {"Cat_Style", "CatXStyle"}
    assert [j.name for j in await store.jobs.search(USER, "cat_")] == ["Cat_Style"]  # _ is not a wildcard
    assert [j.id for j in await store.jobs.search(USER, dog[:8].upper())] == [dog]
    assert [j.name for j in await store.jobs.search(USER, "cat", finished_only=True)] == ["Cat_Style"]
    assert await store.jobs.search(USER, "", finished_only=True, status=JobStatus.PROCESSING) == []
    assert len(await store.jobs.search(USER, "", limit=2)) == 2
    assert await store.jobs.search(USER, "%") == []


async def test_payer_and_flags_round_trip(store: Store) -> None:
    job = await store.jobs.create(new_job(payer=Payer.USER, simulated=True, hook_secret_hash=None))
    assert job.payer is Payer.USER and job.simulated and job.hook_secret_hash is None


def limits_for(clock: FakeClock, **caps: Any) -> SubmitLimits:
    start = clock.now.replace(hour=0, minute=0, second=0, microsecond=0)
    fields: dict[str, Any] = {"max_active": None, "daily_cap": None, "monthly_cap": None} | caps
    return SubmitLimits(day_start=start, month_start=start.replace(day=1), **fields)


async def test_claims_racing_in_two_processes_never_beat_a_cap_and_reserve_the_price(
    store: Store, clock: FakeClock, db_path: Path
) -> None:
    drafts = [await store.jobs.create(new_job(price_quoted=1000.0)) for _ in range(6)]
    second = await Store.open(db_path)
    try:
        limits = limits_for(clock, daily_cap=2500)
        claims = await asyncio.gather(
            *(s.jobs.claim_for_submit(job.id, limits=limits) for job in drafts for s in (store, second))
        )
    finally:
        await second.close()
    assert [bool(c) for c in claims].count(True) == 2  # 2 × 1000 fits in 2500, a third does not
    refused = {c.refusal for c in claims if not c}
    assert refused == {ClaimRefusal.DAILY_CAP, ClaimRefusal.NOT_A_DRAFT}
    assert await store.ledger.spent_by_user(GUILD, USER, clock.now - timedelta(days=1)) == 2000


async def test_a_claim_checks_the_revision_and_the_runs_limit_then_release_drops_the_reservation(
    store: Store, clock: FakeClock
) -> None:
    first = await store.jobs.create(new_job(price_quoted=700.0))
    second = await store.jobs.create(new_job(price_quoted=800.0))
    revision = await store.jobs.update_draft(second.id, {"steps": 5}, 900.0, 800.0)
    assert revision == 2
    assert (await store.jobs.claim_for_submit(second.id, revision=1)).refusal is ClaimRefusal.REVISED
    limits = limits_for(clock, max_active=1)
    assert await store.jobs.claim_for_submit(first.id, revision=1, limits=limits)
    claim = await store.jobs.claim_for_submit(second.id, revision=2, limits=limits)
    assert claim.refusal is ClaimRefusal.CONCURRENCY and claim.used == 1
    assert await store.ledger.spent_for_job(first.id) == 700.0
    assert await store.jobs.release_claim(first.id)
    assert await store.ledger.spent_for_job(first.id) == 0
    assert await store.jobs.claim_for_submit(second.id, revision=2, limits=limits)
    with pytest.raises(ValueError, match="never stored empty"):
        await store.jobs.mark_submitted(second.id, "", 800.0)


async def test_recovery_takes_over_only_a_lease_that_ran_out(store: Store, clock: FakeClock) -> None:
    job = await store.jobs.create(new_job())
    lease = clock.now + timedelta(seconds=60)
    assert await store.jobs.claim_for_submit(job.id, lease_until=lease)
    assert await store.jobs.take_over_submit(job.id, clock.now + timedelta(seconds=60)) is None
    clock.advance(seconds=30)
    assert await store.jobs.renew_lease(job.id, lease, clock.now + timedelta(seconds=60))
    assert not await store.jobs.renew_lease(job.id, lease, clock.now + timedelta(seconds=60))  # not held any more
    clock.advance(seconds=61)
    taken = await store.jobs.take_over_submit(job.id, clock.now + timedelta(seconds=60))
    assert taken is not None and taken.status is JobStatus.SUBMITTING
    assert await store.jobs.take_over_submit(job.id, clock.now + timedelta(seconds=60)) is None  # taken once
