"""forget_user: after it, no row in any table mentions the member; everyone else is untouched."""

from __future__ import annotations

from datetime import UTC, datetime

from storage import Store
from storage.captions import NewCaptionRun
from storage.copy import snapshot
from storage.generations import GenerationKind, GenerationRepository, NewGeneration
from storage.models import FORGOTTEN_MEMBER_ID, Payer, TokenSource
from tests.storage.conftest import ADMIN, CHANNEL, GUILD, OTHER_USER, USER, new_job


async def rows_mentioning(store: Store, user_id: int) -> list[tuple[str, tuple[object, ...]]]:
    """Every row of every table with a cell equal to the id, or text containing it."""
    return [
        (table, row)
        for table, rows in (await snapshot(store)).items()
        for row in rows
        if any(cell == user_id or (isinstance(cell, str) and str(user_id) in cell) for cell in row)
    ]


async def populate(store: Store, user_id: int, admin_id: int) -> None:
    await store.users.set_dm_notify(user_id, False)
    await store.users.set_token_ciphertext(user_id, "gAAAA-ciphertext")
    job = await store.jobs.create(new_job(user_id=user_id))
    await store.jobs.claim_for_submit(job.id)
    await store.jobs.mark_submitted(job.id, f"wf-{job.id}", 2000)
    await store.jobs.update_state(job.id, "processing", {"status": "processing"}, 0.5)  # type: ignore[arg-type]
    await store.events.mark_handled(job.id, "status:processing")
    await store.epochs.record_posted(job.id, 1, 77)
    await store.deliveries.record(job.id, "sha256:cc", "refreshed")
    await store.ledger.settle(job.id, 1900, credits=50)
    await store.guilds.block(GUILD, user_id, by=admin_id, reason="test")
    await store.audit.add(GUILD, user_id, "job.submit", {"job": job.id})
    await store.audit.add(GUILD, admin_id, "member.block", {"reason": "test"}, subject_id=user_id)
    await store.audit.add(GUILD, admin_id, "job.cancel", {"owner": str(user_id)})
    await store.audit.add(GUILD, admin_id, "settings.limits", {"nested": {"by_user": [user_id]}})
    # What Try it leaves: a generation they paid for (on another member's run) and their vote.
    generations = GenerationRepository(store.db)
    generation = await generations.create(new_generation(user_id, job_id=None))
    assert (await generations.claim(generation.id)).refusal is None
    await generations.mark_submitted(generation.id, f"wf-gen-{user_id}", 8)
    await generations.vote(job.id, admin_id, 1)
    others = await store.jobs.create(new_job(user_id=admin_id))
    await generations.vote(others.id, user_id, 1)
    # A captioning run they paid for: their images' names and captions.
    run = await store.captions.create(new_caption_run(user_id))
    assert (await store.captions.claim(run.id, None, datetime(2100, 1, 1, tzinfo=UTC))).refusal is None
    await store.captions.mark_running(run.id, f"wf-cap-{user_id}", 3)


def new_caption_run(user_id: int) -> NewCaptionRun:
    return NewCaptionRun(
        guild_id=GUILD, channel_id=CHANNEL, user_id=user_id, source_digest="sha256:dd", mode="missing",
        style="sentences", trigger_word="sks", images=[f"photo-of-{user_id}.png"], payer=Payer.USER,
        simulated=False, price_quoted=3, context={"command": "train"},
    )  # fmt: skip


def new_generation(user_id: int, job_id: str | None) -> NewGeneration:
    return NewGeneration(
        guild_id=GUILD, channel_id=CHANNEL, user_id=user_id, job_id=job_id, kind=GenerationKind.TRY,
        params={"prompt": "sks dog"}, payer=Payer.USER, token_source=TokenSource.USER, price_estimate=8,
        price_quoted=8, simulated=False,
    )  # fmt: skip


async def test_forget_user_leaves_no_row_naming_them(store: Store) -> None:
    await populate(store, USER, ADMIN)
    await populate(store, OTHER_USER, ADMIN)
    await store.guilds.block(GUILD, ADMIN, by=USER, reason="the forgotten member blocked an admin")
    assert await rows_mentioning(store, USER)  # the scan does see the member before

    removed = await store.forget_user(USER)

    assert await rows_mentioning(store, USER) == []
    assert removed["jobs"] == 1 and removed["user_settings"] == 1 and removed["audit_log"] == 4
    assert removed["caption_runs"] == 1
    # Others keep everything; the block the member placed stays, without their name.
    assert (await store.users.get(OTHER_USER)).has_token
    assert len(await store.jobs.list_for_user(OTHER_USER)) == 1
    assert await store.guilds.is_blocked(GUILD, OTHER_USER)
    block = await store.guilds.get_block(GUILD, ADMIN)
    assert block is not None and block.blocked_by is None
    [other_job] = await store.jobs.list_for_user(OTHER_USER)
    assert await store.events.is_handled(other_job.id, "status:processing")
    assert await store.ledger.spent_for_job(other_job.id) == 1850
    assert len(await store.audit.recent(GUILD)) == 4


async def test_forgetting_a_member_keeps_the_servers_spend(store: Store) -> None:
    """A server's monthly cap must not come back because a member asked to be forgotten."""
    await populate(store, USER, ADMIN)
    since = datetime(2000, 1, 1, tzinfo=UTC)
    before = await store.ledger.spent_by_guild(GUILD, since)
    removed = await store.forget_user(USER)
    # The run's charge, settlement and credit, a generation's charge and a captioning run's.
    assert removed["spend_ledger"] == 5
    assert await store.ledger.spent_by_guild(GUILD, since) == before == 1850 + 8 + 3
    assert await store.ledger.spent_by_user(GUILD, USER, since) == 0
    [usage] = await store.ledger.usage_by_user(GUILD, since)
    assert (usage.user_id, usage.spent) == (FORGOTTEN_MEMBER_ID, 1850 + 8 + 3)
