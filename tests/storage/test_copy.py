"""``python -m bot db copy``: a SQLite bot moved to PostgreSQL answers exactly as before."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta
from pathlib import Path

from storage import Store
from storage.copy import snapshot
from storage.models import JobStatus, Payer
from storage.store import sqlite_url
from tests.storage.conftest import ADMIN, GUILD, OTHER_GUILD, OTHER_USER, USER, FakeClock, new_job


async def fill(store: Store, clock: FakeClock) -> None:
    """A bot that ran a while: tokens, settings, jobs in every stage, the ledger, the journal."""
    await store.users.set_token_ciphertext(USER, "gAAAA-user-token")
    await store.users.set_dm_notify(OTHER_USER, False)
    await store.guilds.set_token_ciphertext(GUILD, "gAAAA-server-token")
    await store.guilds.update(GUILD, user_daily_buzz_cap=5000, guild_monthly_buzz_cap=90000, payer=Payer.SERVER)
    await store.guilds.add_channel(GUILD, 42)
    await store.guilds.block(OTHER_GUILD, OTHER_USER, by=ADMIN, reason="spam")
    await store.set_meta("command_tree", "abc")
    for n, (guild, user) in enumerate([(GUILD, USER), (GUILD, OTHER_USER), (OTHER_GUILD, USER)] * 3):
        clock.advance(hours=5)
        job = await store.jobs.create(new_job(guild_id=guild, user_id=user, name=f"style-{n}", price_quoted=100.0 + n))
        await store.audit.add(guild, user, "job.create", {"job": job.id, "n": n})
        if n % 4 == 3:
            continue  # a draft
        await store.jobs.claim_for_submit(job.id)
        if n % 4 == 2:
            continue  # a submit in flight: its price is reserved
        await store.jobs.mark_submitted(job.id, f"wf-{job.id}", 100.0 + n + 0.25)
        await store.events.mark_handled(job.id, "status:processing")
        await store.epochs.record_posted(job.id, 1, 1000 + n)
        await store.deliveries.record(job.id, f"sha256:{n:02d}", "refreshed")
        if n % 2 == 0:
            await store.jobs.update_state(job.id, JobStatus.SUCCEEDED, {"status": "succeeded"}, 1.0)
            await store.ledger.settle(job.id, 90.0 + n / 3, credits=n)


async def answers(store: Store, clock: FakeClock) -> list[object]:
    """What /jobs, /admin usage and the caps read."""
    now = clock()
    day, month = now - timedelta(days=1), now - timedelta(days=30)
    found: list[object] = []
    for guild in (GUILD, OTHER_GUILD):
        found.append(await store.jobs.matching(guild_id=guild, limit=50))
        found.append(await store.ledger.usage_by_user(guild, month))
        found.append(await store.ledger.spent_by_guild(guild, month))
        found.append(await store.guilds.get(guild))
        for user in (USER, OTHER_USER):
            found.append(await store.jobs.list_for_user(user, guild_id=guild, limit=2, offset=1))
            found.append(await store.jobs.count(guild_id=guild, user_id=user))
            found.append(await store.jobs.count_active_for_user(guild, user))
            found.append(await store.ledger.spent_by_user(guild, user, day))
            found.append(await store.users.get(user))
            found.append(await store.users.get_token_ciphertext(user))
            found.append(await store.guilds.is_blocked(guild, user))
    found.append(await store.jobs.search(None, "STYLE-1"))
    found.append(await store.guilds.get_token_ciphertext(GUILD))
    found.append(await store.audit.recent(GUILD, limit=100))
    return found


async def run_cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_copy_to_postgresql_gives_identical_answers(tmp_path: Path, postgres_url: str, clock: FakeClock) -> None:
    source_url = sqlite_url(tmp_path / "bot.sqlite3")
    source = await Store.open(source_url, clock=clock)
    await fill(source, clock)
    before = await answers(source, clock)
    rows_before = await snapshot(source)
    await source.close()

    code, output = await run_cli("db", "copy", "--from", source_url, "--to", postgres_url)
    assert code == 0, output
    assert "jobs: 9 row(s)" in output

    target = await Store.open(postgres_url, clock=clock)
    try:
        assert await snapshot(target) == rows_before  # every row, ids and times exact
        assert await answers(target, clock) == before
        # New rows number on from the copied ones.
        entry = await target.audit.add(GUILD, USER, "after.copy")
        assert entry.id == max(row[0] for row in rows_before["audit_log"]) + 1
    finally:
        await target.close()

    # A second copy would mix two bots' data: refused, with what to do.
    code, output = await run_cli("db", "copy", "--from", source_url, "--to", postgres_url)
    assert code == 1
    assert "nothing copied: the target database already holds data" in output
    assert "copy into a new, empty database" in output
