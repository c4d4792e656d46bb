"""End to end on the stage (issue 17): two ``python -m bot`` processes, one shard each, one
PostgreSQL, one orchestrator (the simulator, standalone) and a load balancer in front of both
that sends every callback to the process that does NOT own the job (and dataset downloads to
either). A run in a server of each shard; the shard-1 process is SIGKILLed mid-run and started
again. Every epoch message is posted exactly once, each run ends once with its DM, every
callback is on record, and each process followed only its own shard's job."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from storage import Store
from storage.models import JobStatus
from storage.shards import shard_of
from tests.databases import fresh_postgres, postgres_server_url
from tests.stage import Channel, GuildSpec, MemberSpec, Stage, StageConfig, StageMember
from tests.stage.bots import REPO_ROOT, BotProcess
from tests.tracking.helpers import epoch_messages
from tests.train.helpers import attachment, confirmation, submitted

EPOCHS = 6
STEPS = 120
HOOK = re.compile(r"^/hooks/civitai/([^/]+)/")


@pytest.fixture
def stage_config() -> StageConfig:
    return StageConfig(guilds=(
        GuildSpec(name="Zero", channels=("general",), members=(MemberSpec("alice"),), shard=(0, 2)),
        GuildSpec(name="One", channels=("general",), members=(MemberSpec("bob"),), shard=(1, 2)),
    ))  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def load_balancer(ports: list[int], store: Store, misrouted: list[str]) -> AsyncIterator[str]:
    """In front of the processes on ``ports`` (shard i on ports[i]): a callback goes to the
    process that does not own its job (the one that does when the other is down); anything else
    to the first that answers."""

    async def forward(request: web.Request) -> web.StreamResponse:
        order = list(ports)
        if (match := HOOK.match(request.path)) is not None:
            job = await store.jobs.get(match.group(1))
            if job is not None:
                owner = shard_of(job.guild_id, 2)
                order = [ports[1 - owner], ports[owner]]
        body = await request.read()
        for port in order:
            try:
                async with aiohttp.ClientSession() as session, session.request(
                    request.method, f"http://127.0.0.1:{port}{request.path_qs}", data=body,
                    headers={k: v for k, v in request.headers.items() if k.lower() in ("content-type",)},
                ) as answer:  # fmt: skip
                    if match is not None and port == order[0]:
                        misrouted.append(match.group(1))
                    return web.Response(status=answer.status, body=await answer.read(),
                                        content_type=answer.content_type)  # fmt: skip
            except aiohttp.ClientConnectionError:
                continue
        return web.Response(status=502)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def simulator(data: Path, route: str) -> AsyncIterator[str]:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.civitai.simulator", "--port", str(port), "--speed", "100",
        "--data", str(data), "--route", f"bot.test={route}", cwd=REPO_ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        await process.wait()


async def _train(stage: Stage, member: StageMember) -> Channel:
    await member.slash("train flux1", dataset=attachment(3), trigger_word="sks", steps=STEPS, epochs=EPOCHS,
                       sample_prompts="sks dog on a beach | sks dog in snow")  # fmt: skip
    await member.click(await confirmation(member), label="Confirm")
    await member.wait_ephemeral(submitted)
    return await stage.wait_thread(lambda t: t.guild_id == member.guild.id)


def is_final(message: object) -> bool:
    return "finished training" in getattr(message, "content", "")


async def test_two_shards_in_two_processes_survive_a_kill_with_every_message_once(
    stage: Stage, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    misrouted: list[str] = []
    with fresh_postgres(postgres_server_url()) as database_url:
        store = await Store.open(database_url)
        try:
            async with load_balancer(ports, store, misrouted) as balancer, simulator(tmp_path / "sim", balancer) as sim:
                common = {
                    "DATABASE_URL": database_url,
                    "SHARD_COUNT": "2",
                    "CIVITAI_MODE": "real",
                    "CIVITAI_TOKEN": "operator-token",
                    "ORCHESTRATOR_URL": sim,
                    "PUBLIC_URL": "https://bot.test",
                    "SECRET_KEY": "one-key-for-every-process",
                    "DATASETS_DIR": str(tmp_path / "shared-datasets"),
                    "RECONCILE_INTERVAL_SECONDS": "1",
                    "CARD_EDIT_INTERVAL_SECONDS": "0.2",
                    "COMMAND_COOLDOWN_SECONDS": "0",
                    "LOG_LEVEL": "DEBUG",  # every line of work on a job carries its id
                }
                processes = [
                    BotProcess(stage, tmp_path / f"bot{i}", SHARD_IDS=str(i), HTTP_PORT=str(ports[i]), **common)
                    for i in (0, 1)
                ]
                zero, one = list(stage.guilds.values())
                alice, bob = stage.member("alice", guild=zero), stage.member("bob", guild=one)
                try:
                    for process in processes:
                        await process.start()
                    threads = [await _train(stage, alice), await _train(stage, bob)]
                    await stage.wait_message(threads[1], lambda m: m.content.startswith("**Epoch 2/"), timeout=30)
                    await processes[1].kill()
                    await asyncio.sleep(0.5)
                    await processes[1].start()
                    for thread in threads:
                        await stage.wait_message(thread, is_final, timeout=60)
                    for member in (alice, bob):
                        await member.wait_dm(is_final)
                    await asyncio.sleep(1.0)  # time for a duplicate to show, were one coming
                finally:
                    for process in processes:
                        await process.stop()

                for thread, member in zip(threads, (alice, bob), strict=True):
                    numbers = [m.content.split(" ")[1] for m in epoch_messages(stage, thread)]
                    assert numbers == [f"{n}/{EPOCHS}**" for n in range(1, EPOCHS + 1)], numbers
                    assert len([m for m in stage.messages_in(thread) if is_final(m)]) == 1
                    assert len([m for m in stage.messages_in(member.in_dm().channel) if is_final(m)]) == 1
                logs = [process.log_path.read_text(errors="replace") for process in processes]
                for index, guild in enumerate((zero, one)):
                    [job] = await store.jobs.list_for_user((alice, bob)[index].user.id, guild_id=guild.id)
                    assert job.status is JobStatus.SUCCEEDED
                    assert len(await store.deliveries.for_job(job.id, limit=1000)) > 0
                    assert job.id in misrouted, "no callback of this job went to the other process"
                    # Followed by its own shard's process only (every tracker line names its job).
                    assert f"bot.jobs.tracker [job={job.id}" in logs[index]
                    assert f"bot.jobs.tracker [job={job.id}" not in logs[1 - index]
                for log in logs:
                    assert "Traceback" not in log, log[-3000:]
        finally:
            await store.close()
