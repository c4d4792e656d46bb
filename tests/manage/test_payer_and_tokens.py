"""Who pays, and the tokens that pay: against a simulator that accepts only known tokens.

The bot runs in real mode (``CIVITAI_MODE=real``) with ORCHESTRATOR_URL pointing at a
simulator on loopback, so tokens are checked and used exactly as against Civitai. Afterwards
no token may appear in plaintext anywhere: the database file and its WAL, the logs, and every
request the bot sent to Discord.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import TrainerBot
from bot.civitai.simulator import Simulator
from bot.civitai.simulator.state import owner_key
from bot.config import CivitaiMode
from storage.models import JobStatus, TokenSource
from tests.manage.helpers import train, train_refused
from tests.stage import Stage, StageMember
from tests.stage.bots import bot_in_process

SERVER_TOKEN = "srv0a1b2c3d4e5f60718293a4b5c6d7e8f9"
ALICE_TOKEN = "alc9f8e7d6c5b4a39281706f5e4d3c2b1a0"
WRONG_TOKEN = "nope0123456789abcdef0123456789abcd"
TOKENS = (SERVER_TOKEN, ALICE_TOKEN, WRONG_TOKEN)


@pytest.fixture
async def civitai() -> AsyncIterator[Simulator]:
    sim = Simulator(speed=0, accept_any_token=False)
    sim.add_account(SERVER_TOKEN, 100_000)
    sim.add_account(ALICE_TOKEN, 100_000)
    await sim.start("127.0.0.1", 0)
    yield sim
    await sim.stop()


@pytest.fixture
async def real_bot(stage: Stage, civitai: Simulator, tmp_path: Path) -> AsyncIterator[TrainerBot]:
    assert civitai.base_url is not None
    async with bot_in_process(
        stage,
        tmp_path / "bot-data",
        civitai_mode=CivitaiMode.REAL,
        orchestrator_url=civitai.base_url,
        command_cooldown_seconds=0,
    ) as bot:
        yield bot


async def link(member: StageMember, command: str, token: str) -> str:
    ix = await member.slash(command)
    modal = await ix.modal()
    assert len(modal.inputs) == 1
    done = await member.submit_modal(modal, {"Civitai API key": token})
    reply = await done.reply()
    assert reply.ephemeral
    return str(reply.embed["title"]) + "\n" + str(reply.embed["description"])


def plaintext_leaks(stage: Stage, data_dir: Path, logs: str) -> list[str]:
    """Every place a token appears in the clear."""
    leaks = []
    for path in data_dir.rglob("*"):
        if path.is_file() and any(t.encode() in path.read_bytes() for t in TOKENS):
            leaks.append(str(path))
    for request in stage.requests:
        if any(t in repr(request.body) for t in TOKENS):
            leaks.append(f"request {request}")
    for message in stage.messages.values():
        if any(t in message.text for t in TOKENS):
            leaks.append(f"message {message.id}")
    leaks += [f"log contains {t[:4]}…" for t in TOKENS if t in logs]
    return leaks


async def test_who_pays_decides_the_token_and_tokens_never_leak(
    stage: Stage,
    civitai: Simulator,
    real_bot: TrainerBot,
    admin: StageMember,
    alice: StageMember,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("bot", "cogs", "storage"):
        caplog.set_level(logging.DEBUG, logger=name)
    caplog.set_level(logging.INFO, logger="discord")  # its DEBUG logs gateway payloads; the bot never enables it
    bot = real_bot

    # The server pays, without a token: /train is refused, saying what to do.
    await (await admin.slash("admin payer", who="server")).reply()
    refusal = await train_refused(alice)
    assert refusal.startswith("No Civitai account to pay for this") and "/admin token set" in refusal

    # A token Civitai refuses is not stored.
    said = await link(admin, "admin token set", WRONG_TOKEN)
    assert said.startswith("Token not linked") and "Civitai refused" in said
    assert await bot.services.store.guilds.get_token_ciphertext(stage.guild.id) is None

    said = await link(admin, "admin token set", f"  {SERVER_TOKEN}  ")
    assert said.startswith("Token linked")
    job = await train(bot, alice)
    assert job.token_source is TokenSource.SERVER and job.status is JobStatus.SUBMITTED and not job.simulated
    assert civitai._records[job.workflow_id or ""].owner == owner_key(SERVER_TOKEN)

    # Cancelling uses the account that submitted it.
    prompt = await (await alice.slash("jobs cancel", job=job.id)).reply()
    await alice.click(prompt, label="Yes, cancel it")
    done = await alice.wait_ephemeral(lambda m: m.embed["title"].startswith("Cancelled"))
    assert "Buzz taken" in done.embed["description"]
    assert civitai._records[job.workflow_id or ""].status == "canceled"
    # Cancelled before it started: Civitai gave it all back, and the ledger agrees.
    assert await bot.services.store.ledger.spent_for_job(job.id) == 0

    # Each member pays: alice has no token yet.
    await (await admin.slash("admin payer", who="user")).reply()
    assert "/account token" in await train_refused(alice)
    said = await link(alice, "account token", ALICE_TOKEN)
    assert "your runs here use it" in said
    job = await train(bot, alice)
    assert job.token_source is TokenSource.USER
    assert civitai._records[job.workflow_id or ""].owner == owner_key(ALICE_TOKEN)

    # Forgetting the token: at once, and the run it pays for is named, since nothing can stop it now.
    ix = await alice.slash("account forget")
    prompt = await ix.reply()
    assert await bot.services.store.users.get_token_ciphertext(alice.id) is None
    assert f"`{job.id}`" in prompt.text and "keep running at Civitai" in prompt.text
    await alice.click(prompt, label="Keep my run history")
    await alice.wait_ephemeral(lambda m: m.embed["title"] == "Token deleted, history kept")
    assert await bot.services.store.jobs.get(job.id) is not None
    assert "/account token" in await train_refused(alice)

    # The operator pays, and there is no CIVITAI_TOKEN.
    await (await admin.slash("admin payer", who="operator")).reply()
    assert "CIVITAI_TOKEN" in await train_refused(alice)

    # Clearing the server token: the server pays again, and is refused again.
    await (await admin.slash("admin token clear")).reply()
    await (await admin.slash("admin payer", who="server")).reply()
    assert "/admin token set" in await train_refused(alice)

    await bot.services.audit.drain()
    actions = [e.action for e in await bot.services.store.audit.recent(stage.guild.id, limit=50)]
    assert "settings.server_token.set" in actions and "settings.server_token.clear" in actions
    await bot.services.store.db.run("PRAGMA wal_checkpoint(PASSIVE)")  # both files, before and after
    assert plaintext_leaks(stage, tmp_path / "bot-data", caplog.text) == []
