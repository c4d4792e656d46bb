"""A callback (and a dataset download) that reaches the wrong process (a load balancer in front
of two) is recorded there and followed by the owner only, once: two bots' services on one
PostgreSQL database, each with the shards of its own servers; every callback of the owner's run
is routed to the other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from pydantic import SecretStr

from bot.config import CivitaiMode, Settings
from bot.services import Services
from storage.models import JobStatus
from storage.shards import shard_of
from tests.databases import fresh_postgres, postgres_server_url
from tests.tracking.helpers import PUBLIC_URL, advance, eventually, submit
from tests.tracking.test_tracker_core import RecordingSink, sim

GUILD = (987_654 << 22) | 5  # on the owner's shard
USER, CHANNEL = 10, 100
EPOCHS = 3


def settings(data: Path, database_url: str, shard: int) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=data,
        # Hosted datasets: the orchestrator's fetch reaches whichever process, which serves it
        # from the directory both share.
        datasets_dir=data.parent / "shared-datasets",
        secret_key=SecretStr("one-key-for-every-process"),  # signed dataset links, stored tokens
        database_url=SecretStr(database_url),
        civitai_mode=CivitaiMode.SIMULATE,
        public_url=PUBLIC_URL,  # callback mode: only callbacks (and reconcile) cause refreshes
        http_host="127.0.0.1",
        http_port=0,
        reconcile_interval_seconds=600,  # the first pass runs at start; no other during the test
        card_edit_interval_seconds=0,
        shard_count=2,
        shard_ids=(shard,),
    )


@asynccontextmanager
async def two_processes(tmp_path: Path) -> AsyncIterator[tuple[Services, Services]]:
    owner_shard = shard_of(GUILD, 2)
    with fresh_postgres(postgres_server_url()) as url:
        async with AsyncExitStack() as stack:
            owner = await Services.start(settings(tmp_path / "owner", url, owner_shard))
            stack.push_async_callback(owner.close)
            other = await Services.start(settings(tmp_path / "other", url, 1 - owner_shard))
            stack.push_async_callback(other.close)
            yield owner, other


async def test_callbacks_sent_to_the_wrong_process_reach_the_owner_and_each_post_is_made_once(
    tmp_path: Path,
) -> None:
    async with two_processes(tmp_path) as (owner, other):
        owner_sink, other_sink = RecordingSink(), RecordingSink()
        for services, sink in ((owner, owner_sink), (other, other_sink)):
            services.tracker.attach(sink)
            await services.tracker.start()
        assert other.web is not None
        sim(owner).speed = 0
        sim(owner).route_host("bot.test", other.web.base_url)  # the load balancer picks the other
        job = await submit(owner, tmp_path, guild_id=GUILD, user_id=USER, channel_id=CHANNEL, epochs=EPOCHS, steps=60)
        await owner.tracker.job_opened(job.id)

        await advance(sim(owner), 1000)  # the whole run: its callbacks go to the other process
        await eventually(lambda: owner_sink.dms, "the owner told the end (thread, then DM)", within=15)
        for _ in range(200):  # the end is stored last, once everything was told
            stored = await owner.store.jobs.get(job.id)
            if stored is not None and stored.status.finished:
                break
            await asyncio.sleep(0.05)
        await sim(owner).settle()

        delivered = [d for d in sim(owner).callbacks.deliveries if d.status == 200]
        assert delivered, "the simulator delivered no callback"
        assert len(await other.store.deliveries.for_job(job.id, limit=1000)) == len(delivered)  # recorded there
        # The other process followed nothing: no workflow read, no post.
        assert other.tracker.refreshes == 0
        assert (other_sink.epochs, other_sink.notices, other_sink.cards, other_sink.dms) == ([], [], [], [])
        assert [event.number for event in owner_sink.epochs] == list(range(1, EPOCHS + 1))
        assert [notice.job.id for notice in owner_sink.notices] == [job.id] and len(owner_sink.dms) == 1
        stored = await owner.store.jobs.get(job.id)
        assert stored is not None and stored.status is JobStatus.SUCCEEDED
